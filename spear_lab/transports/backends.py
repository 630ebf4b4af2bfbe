"""Named realtime backends (host configuration) and routing a connecting fd to one.

A :class:`Backend` is host policy, never visible to a guest: where to connect, which
dialect to speak, the *name* of the environment variable holding its credential, which
models guests may ask for.  A :class:`BackendRegistry` holds the backends a host offers
and the default one.  :func:`route` (called by CONNECT through
:class:`spear_lab.transports.factory.TransportOpener`) turns a guest's params into a
transport:

- ``backend``: a backend name (default: the registry's default, ``local``), first mapped
  through ``HostConfig.routes`` (guest name → host backend, ``spear-lab run --route``);
- ``model``: must be one of the backend's ``models`` when that list is set;
- ``dialect``: ``"ga"`` or ``"beta"``, overriding the backend's;
- ``ws_url``: honoured only when ``HostConfig.allow_guest_ws_url`` allows that URL
  (``"loopback"`` by default), and never given a host credential;
- ``connect_timeout_ms``: may shorten the backend's connect timeout.

Errors raise :class:`ConnectRefused` with a secret-free message.  Refusals marked
``final`` (a backend whose credential is missing, a ``ws_url`` the host refuses) fail
CONNECT even when ``HostConfig.stub_fallback`` is on; the others (unknown backend, model
not offered, embedded server not installed) let the factory fall back to the stub.

The default registry: ``local`` (the embedded server, started on first use), ``stub``
(the stub transport under a backend name) and ``openai`` (``wss://api.openai.com``,
credential ``OPENAI_API_KEY``, GA dialect).
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import urlsplit

from . import protocol
from .base import ConnectRefused, Transport
from .embedded import EmbeddedServerSlot
from .protocol import GA, SessionRequest
from .realtime_ws import DEFAULT_CONNECT_TIMEOUT_S, RealtimeWsTransport, Secret, is_loopback_url
from .stub import StubTransport

if TYPE_CHECKING:
    from ..fds.rtasr import RtasrFd
    from ..host import HostContext

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini-transcribe"
#: ``Backend.url`` value meaning "the embedded local server".
EMBEDDED = "embedded"
#: ``Backend.url`` value meaning "the stub transport".
STUB = "stub"
OPENAI_URL = "wss://api.openai.com/v1/realtime?intent=transcription"
#: GET_STATUS ``backend`` of a connection to a guest-supplied ``ws_url``.
GUEST_URL_BACKEND = "ws_url"
#: Environment variables read by :meth:`BackendRegistry.from_env`.
ENV_BACKENDS_FILE = "SPEAR_LAB_BACKENDS"
ENV_DEFAULT_BACKEND = "SPEAR_LAB_DEFAULT_BACKEND"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def refuse(message: str, final: bool = False) -> ConnectRefused:
    """A :class:`ConnectRefused`; ``final`` ones are never replaced by the stub."""
    return ConnectRefused(message, final)


@dataclass(frozen=True, repr=False)
class Backend:
    """One realtime transcription backend the host offers.

    - ``url``: a ``ws``/``wss``/``http``/``https`` base or session URL (completed by
      :func:`protocol.realtime_url`), ``"embedded"`` or ``"stub"``;
    - ``dialect``: ``"ga"`` or ``"beta"``;
    - ``credential_env``: the NAME of the environment variable holding the API key
      (never the key itself), or None for no ``Authorization`` header;
    - ``models``: the models guests may request (None = any);
    - ``default_model``: used when the guest sets no ``model``;
    - ``connect_timeout_s``: handshake deadline, seconds.

    ValueError when a field is malformed (the message never repeats ``credential_env``
    when it does not look like a variable name, in case a key was pasted there).
    """

    name: str
    url: str
    dialect: str = GA
    credential_env: str | None = None
    models: tuple[str, ...] | None = None
    default_model: str = DEFAULT_MODEL
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a backend needs a non-empty name")
        if not isinstance(self.url, str) or not self.url:
            raise ValueError(f"backend {self.name!r}: url must be a non-empty string")
        if self.kind == "websocket":
            protocol.realtime_url(self.url)  # raises ValueError for a bad scheme or host
        if self.dialect not in protocol.DIALECTS:
            raise ValueError(f"backend {self.name!r}: dialect must be 'ga' or 'beta'")
        if self.credential_env is not None and (
                not isinstance(self.credential_env, str) or not _ENV_NAME.match(self.credential_env)):
            raise ValueError(f"backend {self.name!r}: credential_env must be the NAME of an "
                             "environment variable (letters, digits, underscore), not a key")
        if self.models is not None:
            models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
            if not all(isinstance(m, str) and m for m in models):
                raise ValueError(f"backend {self.name!r}: models must be non-empty strings")
            object.__setattr__(self, "models", models)
        if not isinstance(self.default_model, str) or not self.default_model:
            raise ValueError(f"backend {self.name!r}: default_model must be a non-empty string")
        timeout = self.connect_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"backend {self.name!r}: connect_timeout_s must be a positive number")

    @property
    def kind(self) -> str:
        """``"embedded"``, ``"stub"`` or ``"websocket"``."""
        if self.url == EMBEDDED:
            return "embedded"
        if self.url == STUB:
            return "stub"
        return "websocket"

    def session_url(self) -> str:
        """The WebSocket URL to connect to (``websocket`` backends only)."""
        return protocol.realtime_url(self.url)

    def allows_model(self, model: str) -> bool:
        """True when guests may request ``model`` from this backend."""
        return self.models is None or model in self.models

    def credential(self, environ: Mapping[str, str] | None = None) -> Secret | None:
        """The credential read from the environment now; None without ``credential_env``.

        Raises a final :class:`ConnectRefused` when the variable is missing or empty.
        """
        if self.credential_env is None:
            return None
        value = (os.environ if environ is None else environ).get(self.credential_env, "")
        if not value:
            raise refuse(f"backend {self.name!r} needs a credential: environment variable "
                         f"{self.credential_env} is not set", final=True)
        return Secret(value)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (the inverse of :meth:`from_dict`)."""
        return {"name": self.name, "url": self.url, "dialect": self.dialect,
                "credential_env": self.credential_env,
                "models": list(self.models) if self.models is not None else None,
                "default_model": self.default_model, "connect_timeout_s": self.connect_timeout_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None) -> "Backend":
        """A backend from plain data; unknown keys raise ValueError."""
        fields = dict(data)
        if name is not None:
            fields.setdefault("name", name)
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"backend {fields.get('name')!r}: unknown keys {sorted(unknown)}")
        return cls(**fields)

    def __repr__(self) -> str:
        url = self.url if self.kind != "websocket" else protocol.redact_url(self.url)
        return (f"Backend(name={self.name!r}, url={url!r}, dialect={self.dialect!r}, "
                f"credential_env={self.credential_env!r}, models={self.models!r}, "
                f"default_model={self.default_model!r}, connect_timeout_s={self.connect_timeout_s!r})")


class BackendRegistry:
    """The backends a host offers, by name, and the default one."""

    def __init__(self, backends: Iterable[Backend] | Mapping[str, Backend] = (),
                 default: str | None = None) -> None:
        items = backends.values() if isinstance(backends, Mapping) else backends
        self._backends: dict[str, Backend] = {}
        for backend in items:
            if not isinstance(backend, Backend):
                raise TypeError(f"not a Backend: {type(backend).__name__}")
            self._backends[backend.name] = backend
        if default is None and self._backends:
            default = "local" if "local" in self._backends else next(iter(self._backends))
        if default is not None and default not in self._backends:
            raise ValueError(f"default backend {default!r} is not configured")
        self.default = default

    def get(self, name: str) -> Backend | None:
        """The backend called ``name``, or None."""
        return self._backends.get(name)

    def names(self) -> list[str]:
        """Backend names, in configuration order."""
        return list(self._backends)

    def __contains__(self, name: object) -> bool:
        return name in self._backends

    def __iter__(self) -> Iterator[Backend]:
        return iter(self._backends.values())

    def __len__(self) -> int:
        return len(self._backends)

    def with_backends(self, *backends: Backend, default: str | None = None) -> "BackendRegistry":
        """A new registry with ``backends`` added (replacing same-named ones)."""
        merged = {**self._backends, **{b.name: b for b in backends}}
        return BackendRegistry(merged, default if default is not None else
                               (self.default if self.default in merged else None))

    def merged(self, other: "BackendRegistry") -> "BackendRegistry":
        """This registry overlaid with ``other`` (its backends and its default win)."""
        return self.with_backends(*other, default=other.default)

    def to_dict(self) -> dict[str, Any]:
        """Plain data accepted by :meth:`from_dict`."""
        return {"default": self.default,
                "backends": {b.name: {k: v for k, v in b.to_dict().items() if k != "name"} for b in self}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BackendRegistry":
        """From ``{"default": NAME, "backends": {NAME: {...}} or [{"name": ..}, ..]}``."""
        raw = data.get("backends", {})
        if isinstance(raw, Mapping):
            backends = [Backend.from_dict(v, name=k) for k, v in raw.items()]
        else:
            backends = [Backend.from_dict(v) for v in raw]
        return cls(backends, data.get("default"))

    @classmethod
    def from_toml(cls, source: "str | os.PathLike[str]") -> "BackendRegistry":
        """From TOML text or a TOML file::

            default = "lab"
            [backends.lab]
            url = "ws://127.0.0.1:8765"
            dialect = "beta"
            credential_env = "LAB_KEY"
        """
        text = os.fspath(source)
        if not isinstance(source, str) or ("\n" not in text and _is_file(text)):
            text = Path(text).read_text()
        return cls.from_dict(tomllib.loads(text))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 base: "BackendRegistry | None" = None) -> "BackendRegistry":
        """``base`` (default: :func:`default_registry`) overlaid with the TOML file named
        by ``$SPEAR_LAB_BACKENDS``, with the default from ``$SPEAR_LAB_DEFAULT_BACKEND``."""
        env = os.environ if environ is None else environ
        registry = base if base is not None else default_registry()
        path = env.get(ENV_BACKENDS_FILE)
        if path:
            registry = registry.merged(cls.from_dict(tomllib.loads(Path(path).read_text())))
        default = env.get(ENV_DEFAULT_BACKEND)
        if default:
            registry = registry.with_backends(default=default)
        return registry

    def __repr__(self) -> str:
        return f"<BackendRegistry {', '.join(self.names())} default={self.default}>"


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def default_registry() -> BackendRegistry:
    """``local`` (embedded server, the default), ``stub`` and ``openai``."""
    return BackendRegistry([
        Backend("local", EMBEDDED),
        Backend("stub", STUB),
        Backend("openai", OPENAI_URL, dialect=GA, credential_env="OPENAI_API_KEY"),
    ], default="local")


def registry_for(backends: Any) -> BackendRegistry:
    """``HostConfig.backends`` as a registry: None → the default registry overlaid with
    ``$SPEAR_LAB_BACKENDS`` (:meth:`BackendRegistry.from_env`); a registry;
    a mapping (:meth:`BackendRegistry.from_dict`); or an iterable of backends."""
    if backends is None:
        return BackendRegistry.from_env()
    if isinstance(backends, BackendRegistry):
        return backends
    if isinstance(backends, Mapping):
        return BackendRegistry.from_dict(backends)
    return BackendRegistry(list(backends))


# -- routing -------------------------------------------------------------------------------


def route(fd: "RtasrFd", ctx: "HostContext", embedded: EmbeddedServerSlot) -> Transport:
    """The transport for a ``transport = "websocket"`` CONNECT of ``fd``; ``embedded``
    is the context's embedded server (started on first use by a ``local`` connection).

    Called with the table lock held: reads params and the environment, never blocks.
    Raises :class:`ConnectRefused` (see the module docstring for which are final).
    """
    try:
        registry = registry_for(ctx.config.backends)
    except OSError as exc:  # an unreadable $SPEAR_LAB_BACKENDS (no host path to the guest)
        raise refuse(f"host backend configuration is invalid: cannot read ${ENV_BACKENDS_FILE} "
                     f"({type(exc).__name__})", final=True) from None
    except (TypeError, ValueError) as exc:
        raise refuse(f"host backend configuration is invalid: {exc}", final=True) from None
    requested = fd.param("backend")
    if requested is not None and (not isinstance(requested, str) or not requested):
        raise refuse("param backend must be a non-empty string")
    routes = getattr(ctx.config, "routes", None) or {}
    if requested is not None and requested in routes:
        requested = routes[requested]
    backend = registry.get(requested) if requested is not None else (
        registry.get(registry.default) if registry.default else None)
    if requested is not None and backend is None:
        raise refuse(unknown_backend_message(requested, registry))

    ws_url = fd.param("ws_url")
    if ws_url is not None:
        return _guest_url(fd, ctx, ws_url, backend if requested is not None else None)
    if backend is None:
        raise refuse("no realtime backend configured")
    if backend.kind == "stub":
        return StubTransport(fd, ctx.io, backend=backend.name)

    credential = backend.credential()  # a final refusal when missing: checked first
    model = _model(fd, backend)
    dialect = _dialect(fd, backend.dialect)
    if backend.kind == "embedded":
        url: str | Callable[[], str] = embedded.url_resolver()
    else:
        url = backend.session_url()
    return RealtimeWsTransport(
        fd, ctx.io, url=url, config=SessionRequest.from_params(fd.params, model),
        backend=backend.name, dialect=dialect, credential=credential,
        connect_timeout_s=_timeout(fd, backend.connect_timeout_s),
        vad_probabilities=backend.kind == "embedded",  # the server's extension: Trace only
    )


def unknown_backend_message(name: str, registry: BackendRegistry) -> str:
    """``last_error`` for a backend name nothing routes: the known names and the fix."""
    known = ", ".join(registry.names()) or "none"
    return (f"unknown backend {name!r} (known: {known}; the host can route it, "
            f"e.g. spear-lab run --route {name}=local)")


def guest_url_allowed(url: str, policy: Any) -> bool:
    """Whether ``HostConfig.allow_guest_ws_url`` = ``policy`` admits a guest ``ws_url``."""
    if policy is True:
        try:
            parts = urlsplit(url)
            return parts.scheme.lower() in ("ws", "wss") and bool(parts.hostname)
        except ValueError:
            return False
    if policy == "loopback":
        return is_loopback_url(url)
    return False


def _guest_url(fd: "RtasrFd", ctx: "HostContext", url: Any, base: Backend | None) -> Transport:
    """A connection to the guest's own URL: verbatim, no host credential ever."""
    policy = ctx.config.allow_guest_ws_url
    if not isinstance(url, str) or not guest_url_allowed(url, policy):
        raise refuse(f"param ws_url refused by host policy (allow_guest_ws_url={policy!r})", final=True)
    if base is not None:
        model, dialect, timeout = _model(fd, base), _dialect(fd, base.dialect), base.connect_timeout_s
    else:
        model, dialect, timeout = _model(fd, None), _dialect(fd, GA), DEFAULT_CONNECT_TIMEOUT_S
    return RealtimeWsTransport(
        fd, ctx.io, url=url, config=SessionRequest.from_params(fd.params, model),
        backend=GUEST_URL_BACKEND, dialect=dialect, credential=None,
        connect_timeout_s=_timeout(fd, timeout),
    )


def _model(fd: "RtasrFd", backend: Backend | None) -> str:
    model = fd.param("model")
    if model is None:
        return backend.default_model if backend is not None else DEFAULT_MODEL
    if not isinstance(model, str) or not model:
        raise refuse("param model must be a non-empty string")
    if backend is not None and not backend.allows_model(model):
        raise refuse(f"model {model!r} is not offered by backend {backend.name!r}")
    return model


def _dialect(fd: "RtasrFd", default: str) -> str:
    dialect = fd.param("dialect")
    if dialect is None:
        return default
    if dialect not in protocol.DIALECTS:
        raise refuse("param dialect must be 'ga' or 'beta'")
    return dialect


def _timeout(fd: "RtasrFd", limit_s: float) -> float:
    """The backend's connect timeout, shortened by a positive ``connect_timeout_ms``."""
    ms = fd.param("connect_timeout_ms")
    if isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms > 0:
        return min(limit_s, ms / 1000.0)
    return limit_s
