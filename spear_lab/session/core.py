"""The notebook-facing object: one Host, its I/O loop, its Trace and its guests.

A :class:`Session` is the composition root: it owns a :class:`~spear_lab.host.Host`
whose :class:`~spear_lab.host.HostContext` is wired to the real edges
(:mod:`.wiring`) and runs the I/O loop in a background thread, a
:class:`~spear_lab.trace.Trace` attached to it and to every guest's fd table, and the
guests it started.  The guest lifecycle lives on the caller's loop:

- :meth:`Session.start` returns a :class:`GuestHandle` at once; ``await handle`` waits on
  the kernel's running loop without blocking it;
- ``await session.run_async(...)`` starts and waits;
- :meth:`Session.run` starts and blocks until the guest ends — inside a Jupyter kernel it
  keeps pumping the kernel's loop (nest-asyncio2's re-entrant ``run_until_complete``), so
  live views keep refreshing; in a script it simply waits.

``session.abi`` is the same ABI for Python callers, recorded in the Trace under the
instance name ``"python"``, so a notebook can teach it before any guest exists.

Closing the session (or leaving its ``with`` block) stops every guest, closes every fd,
stops the views, the embedded server and the I/O loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..host import Host, HostConfig
from ..runtime.guest import GuestResult, GuestRun, RunOptions
from ..runtime.loading import load_guest
from ..trace import Trace, TraceCaps
from .handle import GuestHandle
from .policy import ENV_BACKEND, backend_env, mic_policy, segmentation_env
from .traced import TracedAbi
from .wiring import host_context

__all__ = ["Session"]

log = logging.getLogger(__name__)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _pump(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    """Run ``coro`` to completion on the already-running ``loop`` (re-entrantly)."""
    import nest_asyncio2

    if not hasattr(loop, "_nest_patched"):
        nest_asyncio2.apply(loop)
    return loop.run_until_complete(coro)


class Session:
    """One Host with its I/O loop, Trace and guests (see the module docstring).

    ``config`` is the host policy (:class:`HostConfig`); ``mic`` and ``backend`` set
    session-wide defaults for :meth:`start`; ``trace`` / ``trace_caps`` choose the Trace.
    """

    def __init__(self, config: HostConfig | None = None, *, mic: str | None = None,
                 backend: str | None = None, trace: Trace | None = None,
                 trace_caps: TraceCaps | None = None, name: str = "python") -> None:
        self.trace = trace if trace is not None else Trace(trace_caps)
        self.context = host_context(config, trace=self.trace)
        self.host = Host(context=self.context, name=name)
        self.trace.attach(self.host)
        self.abi = TracedAbi(self.host)
        self.backend = backend
        if mic is not None:
            mic_policy(self.config, mic)
        self._lock = threading.Lock()
        self._running: list[GuestHandle] = []
        self._names: dict[str, int] = {}
        self._views: list[Any] = []
        self.handles: list[GuestHandle] = []
        self.closed = False

    # -- properties -----------------------------------------------------------------------

    @property
    def config(self) -> HostConfig:
        """The host policy shared by every guest of the session."""
        return self.context.config

    @property
    def io(self):
        """The I/O loop (a private asyncio loop in a background thread)."""
        return self.context.io

    @property
    def guests(self) -> list[GuestHandle]:
        """Guests still running."""
        with self._lock:
            return list(self._running)

    # -- the ABI from Python ---------------------------------------------------------------

    def rtasr(self, **params: Any):
        """A new :class:`spear_lab.api.Rtasr` on the Python host (calls recorded)."""
        from ..api import Rtasr

        return Rtasr(self.abi, **params)

    def epoll(self):
        """A new :class:`spear_lab.api.Epoll` on the Python host (calls recorded)."""
        from ..api import Epoll

        return Epoll(self.abi)

    def mic(self, **params: Any):
        """A new :class:`spear_lab.api.Mic` on the Python host (calls recorded)."""
        from ..api import Mic

        return Mic(self.abi, **params)

    # -- policy ---------------------------------------------------------------------------

    def set_mic(self, mic: str) -> None:
        """Choose what guests' microphone requests open (see :func:`mic_policy`); applies
        to mic fds configured from now on, in every guest of the session."""
        mic_policy(self.config, mic)

    # -- guests ---------------------------------------------------------------------------

    def _unique(self, name: str) -> str:
        with self._lock:
            n = self._names.get(name, 0) + 1
            self._names[name] = n
        return name if n == 1 else f"{name}-{n}"

    def start(self, guest: Any, args: Sequence[str] = (), env: Mapping[str, str] | None = None, *,
              mic: str | None = None, backend: str | None = None, segmentation: Any = None,
              entry: str | None = None, name: str | None = None) -> GuestHandle:
        """Start ``guest`` (path, wasm bytes, WAT text or built-in name) in its own thread
        and return its handle at once.

        ``mic``: ``"stub"`` / ``"file:PATH"`` / ``"device"`` — the host's microphone
        policy (session-wide, see :meth:`set_mic`); ``backend``: ``"local"``, ``"stub"`` or
        a backend name, and ``segmentation``: a segmentation setting, both handed to the
        guest through its environment (``SPEAR_BACKEND`` / ``SPEAR_TRANSPORT`` /
        ``SPEAR_SEGMENTATION``); explicit ``env`` entries win.  Raises RuntimeError on a
        closed session, ValueError / FileNotFoundError for a bad guest or setting.
        """
        if self.closed:
            raise RuntimeError("session is closed")
        loaded = load_guest(guest, name)
        genv: dict[str, str] = {}
        backend = backend if backend is not None else self.backend
        if backend is not None:
            genv.update(backend_env(backend))
        backend = genv.get(ENV_BACKEND, backend)  # an explicit env wins, and is what it uses
        if segmentation is not None:
            genv.update(segmentation_env(segmentation))
        genv.update(dict(env or {}))
        if mic is not None:
            mic_policy(self.config, mic)
        fork = self.host.fork(self._unique(loaded.name))
        self.trace.attach(fork)
        run = GuestRun(loaded, fork, RunOptions(tuple(args), genv, entry))
        handle = GuestHandle(self, run)
        handle.backend = backend
        with self._lock:
            self._running.append(handle)
            self.handles.append(handle)
            if len(self.handles) > 1000:
                del self.handles[:500]
        run.add_done_callback(handle._finished)  # before start: no lost wake-up
        try:
            run.start()
        except BaseException:
            self.trace.detach(fork)
            self._forget(handle)
            raise
        log.debug("started guest %s", handle.name)
        return handle

    def _forget(self, handle: GuestHandle) -> None:
        with self._lock:
            if handle in self._running:
                self._running.remove(handle)

    async def run_async(self, guest: Any, args: Sequence[str] = (), env: Mapping[str, str] | None = None, *,
                        timeout: float | None = None, **kwargs: Any) -> GuestResult:
        """Start ``guest`` and await its end (stopped after ``timeout`` seconds)."""
        handle = self.start(guest, args, env, **kwargs)
        return await handle.wait_async(timeout)

    def wait(self, handle: GuestHandle, timeout: float | None = None) -> GuestResult:
        """Block until ``handle`` ends (stopping it after ``timeout`` s), pumping the
        caller's running asyncio loop meanwhile when there is one (a Jupyter kernel)."""
        loop = _running_loop()
        if loop is None:
            try:
                return handle.wait(timeout)
            except TimeoutError:
                return handle.stop()
        return _pump(loop, handle.wait_async(timeout))

    def run(self, guest: Any, args: Sequence[str] = (), env: Mapping[str, str] | None = None, *,
            timeout: float | None = None, **kwargs: Any) -> GuestResult:
        """Start ``guest`` and block until it ends (see :meth:`wait`); returns its result."""
        return self.wait(self.start(guest, args, env, **kwargs), timeout)

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass while the kernel's loop (views) keeps running."""
        loop = _running_loop()
        if loop is None:
            time.sleep(seconds)
        else:
            _pump(loop, asyncio.sleep(seconds))

    def stop(self, timeout: float = 5.0) -> list[GuestResult]:
        """Stop every running guest; returns their results."""
        return [h.stop(timeout) for h in self.guests]

    # -- views ----------------------------------------------------------------------------

    def _register_view(self, view: Any) -> None:
        """Freeze ``view`` (``view.freeze()``) when the session closes."""
        with self._lock:
            if view not in self._views:
                self._views.append(view)

    def dashboard(self, **kwargs: Any):
        """A live dashboard over this session's Trace; when the session closes it freezes
        into its static snapshot in place."""
        from ..views import Dashboard

        view = Dashboard(self.trace, **kwargs)
        self._register_view(view)
        return view

    # -- status ---------------------------------------------------------------------------

    @property
    def fds(self):
        """The Python host's fd table, displayable (``FdTableView``)."""
        from ..views.html import FdTableView

        return FdTableView(self.host)

    def status(self):
        """Guests (name, state, duration), open fds of the Python host, trace counts
        (a dict that displays as a table)."""
        from ..views.html import Status

        with self._lock:
            handles = list(self.handles[-50:])
        return Status({
            "closed": self.closed,
            "guests": [{"name": h.name, "state": h.state(), "backend": h.backend,
                        "duration_s": round(h.result.duration_s, 3) if h.result else None}
                       for h in handles],
            "open_fds": [] if self.closed else self.host.table.open_fds(),
            "io_loop": "running" if self.io.running else "stopped",
            "mic": self.config.mic_device,
            "backend": self.backend if self.backend is not None else (
                ", ".join(sorted({h.backend for h in handles if h.backend})) or None),
            "trace": repr(self.trace),
        })

    # -- teardown -------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop guests and views, close every fd, the embedded server and the I/O loop.
        Idempotent."""
        if self.closed:
            return
        self.closed = True
        for handle in self.guests:
            try:
                handle.stop(timeout)
            except TimeoutError:
                log.warning("guest %s did not stop within %.1f s", handle.name, timeout)
        with self._lock:
            handles = list(self.handles)
        for handle in handles:  # no guest thread outlives the session
            thread = handle.run._thread
            if thread is not None and thread.is_alive():
                thread.join(timeout)
        self.host.close()  # HUP transitions still recorded
        self.trace.detach_all()
        self.trace.closed = True  # live views made by hand draw once more and freeze
        from ..views._refresh import displayed_views

        with self._lock:
            views, self._views = self._views, []
        views += [v for v in displayed_views(self.trace) if v not in views]
        for view in views:  # each display becomes the view's final static snapshot
            try:
                view.freeze()
            except Exception:  # pragma: no cover - best effort
                log.exception("freezing view %r failed", view)
        for handle in handles:  # "running" status lines show how the guest ended
            handle._show_state()
        self.context.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.guests)} running"
        return f"<Session {state} {self.trace!r}>"

    def _repr_html_(self) -> str:
        from ..views.html import session_html

        return session_html(self)
