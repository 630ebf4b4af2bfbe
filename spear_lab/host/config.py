"""Host policy: what a host lets its guests do, and where their audio goes.

Nothing in a :class:`HostConfig` is ever visible to a guest.  The edges read it: the
transport opener (backends, routes, fallback, ``ws_url`` policy, the embedded server's
options), the microphone sources (the mic policy and file pacing) and the fd families
(host ceilings on queue and parameter sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Protocol, Union

__all__ = [
    "BackendTable", "DEFAULT_MIC_TAIL_MS", "HOST_PARAM_CEILING", "HOST_QUEUE_CEILING", "HostConfig",
]

#: Default host ceiling on every guest-settable queue limit: 16 MiB (the reference default
#: is 1 MiB; 16 MiB holds about 5.8 minutes of 24 kHz pcm16).
HOST_QUEUE_CEILING = 16 * 1024 * 1024
#: Default ceiling on the SET_PARAM values one rtasr fd holds: 1 MiB.
HOST_PARAM_CEILING = 1024 * 1024
#: Default silence after a file microphone's audio in ``spear-lab run``, in ms.  A server
#: VAD closes a turn after ``silence_ms`` of quiet (the local server's default is 200 ms,
#: the OpenAI default 500 ms, guests ask for up to ~1000 ms) and the recogniser then needs
#: time to answer before the guest sees EPOLLHUP: 1000 ms of silence + up to 1500 ms of
#: recognition and delivery.
DEFAULT_MIC_TAIL_MS = 2500


class BackendTable(Protocol):
    """What the host needs of a backend registry
    (:class:`spear_lab.transports.backends.BackendRegistry`): its names."""

    def names(self) -> list[str]: ...

    def __contains__(self, name: object) -> bool: ...


#: ``HostConfig.backends``: a registry, a mapping of backend tables (TOML shape), an
#: iterable of backends, or None for the default registry.
Backends = Union[BackendTable, Mapping[str, Any], Iterable[Any], None]


@dataclass
class HostConfig:
    """Host-side policy.  Nothing here is ever visible to a guest.

    - ``backends``: a :class:`spear_lab.transports.backends.BackendRegistry` (None = the
      default registry: ``local`` embedded server, ``stub``, ``openai``).
    - ``routes``: guest backend name → host backend name (``{"openai-realtime-asr":
      "local"}``), applied before the registry lookup (``spear-lab run --route``).
    - ``stub_fallback``: a ``transport=websocket`` CONNECT that cannot be routed falls back
      to the stub (reference behaviour, docs/abi.md §5.4; one WARNING per context) instead
      of failing with -EIO.  Off by default: a guest can still ask with
      ``fallback={"to_stub":true}``.
    - ``allow_guest_ws_url``: ``"loopback"`` (default), ``True`` or ``False``: which
      guest-supplied ``ws_url`` values are honoured; credentials never go to them.
    - ``mic_device``: what a guest's ``source: "device"`` opens: ``"device"`` (the real
      default input), ``"device:NAME"`` (the input device the host names), ``"stub"``,
      ``"file:PATH"``, or ``"browser"`` (the browser's microphone: ``browser_mic``, else
      the newest ``spear_lab.views.BrowserMic``) (docs/abi.md §7.3).
    - ``browser_mic``: the browser feed (``spear_lab.audio.browser.BrowserFeed``) that
      ``mic_device="browser"`` opens; None = the newest one.
    - ``mic_file``: the WAV a guest's ``source: "file"`` reads (chosen by the host only).
    - ``mic_file_realtime``: pace file sources in real time (False: as fast as the guest
      reads, nothing dropped); ``mic_file_loop``: restart at the end instead of EPOLLHUP;
      ``mic_file_tail_ms``: silence (ms) played after the file, in real time even when
      the file is not, before EPOLLHUP, so a server VAD can close the last utterance and
      its transcript can arrive (0 here; ``spear-lab run`` uses
      :data:`DEFAULT_MIC_TAIL_MS`).
    - ``mic_device_rate``: rate (Hz) to open input devices at; None = the device's default.
    - ``max_send_queue_bytes`` / ``max_recv_queue_bytes`` / ``max_mic_queue_bytes``: host
      ceilings (bytes) on the queue limits a guest may set; ``max_param_bytes``: total
      bytes of SET_PARAM values one rtasr fd may hold (more → -ENOMEM).  None = no
      ceiling.  Defaults: :data:`HOST_QUEUE_CEILING` and :data:`HOST_PARAM_CEILING`.
    - ``local_server``: options of the embedded server the ``local`` backend starts
      (fields of ``spear_lab.server.ServerOptions``), e.g. ``{"engine": "pocketsphinx"}``,
      ``{"whisper_model": "base.en"}`` or ``{"vad": "statistical"}``.
    """

    backends: Backends = None
    routes: dict[str, str] = field(default_factory=dict)
    stub_fallback: bool = False
    allow_guest_ws_url: bool | Literal["loopback"] = "loopback"
    mic_device: str = "device"
    browser_mic: object | None = None
    mic_file: str | None = None
    mic_file_realtime: bool = True
    mic_file_loop: bool = False
    mic_file_tail_ms: int = 0
    mic_device_rate: int | None = None
    max_send_queue_bytes: int | None = HOST_QUEUE_CEILING
    max_recv_queue_bytes: int | None = HOST_QUEUE_CEILING
    max_mic_queue_bytes: int | None = HOST_QUEUE_CEILING
    max_param_bytes: int | None = HOST_PARAM_CEILING
    local_server: dict[str, Any] = field(default_factory=dict)
