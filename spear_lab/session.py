"""The notebook-facing object: one Host, its I/O loop, its Trace and its guests.

A :class:`Session` owns a :class:`~spear_lab.runtime.host.Host` (whose
:class:`~spear_lab.runtime.host.HostContext` runs the I/O loop in a background thread), a
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
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .abi.jsonfmt import dumps
from .fds.segmentation import Segmentation
from .runtime.guest import GuestResult, GuestRun, RunOptions, load_guest
from .runtime.host import Host, HostConfig, HostContext
from .trace import Trace, TraceCaps

__all__ = ["GuestHandle", "Session", "TracedAbi", "backend_env", "mic_policy", "segmentation_env"]

log = logging.getLogger(__name__)

#: Hostcalls :class:`TracedAbi` records, by their Host method names.
TRACED = frozenset({
    "spear_epoll_create", "spear_epoll_ctl", "spear_epoll_wait", "spear_epoll_close",
    "spear_fd_ctl", "rtasr_create", "rtasr_ctl", "rtasr_write", "rtasr_read", "rtasr_close",
    "mic_create", "mic_ctl", "mic_read", "mic_close", "log", "sleep_ms",
})

#: Environment variables the built-in guests read for their backend and segmentation.
ENV_BACKEND, ENV_TRANSPORT, ENV_SEGMENTATION = "SPEAR_BACKEND", "SPEAR_TRANSPORT", "SPEAR_SEGMENTATION"


# -- host policy helpers --------------------------------------------------------------------

def mic_policy(config: HostConfig, mic: str) -> None:
    """Point a guest's microphone requests at ``mic``: ``"device"`` (the default input),
    ``"device:NAME"`` (the input device whose name contains NAME, or index NAME),
    ``"stub"`` (generated frames), ``"file:PATH"`` (a WAV, also used for ``source:"file"``)
    or ``"demo"`` (the bundled demo recording, :func:`spear_lab.data.demo_path`), or
    ``"browser"`` (the browser's microphone through the most recently created
    :class:`spear_lab.views.BrowserMic`; pass the widget itself to choose one).

    Raises ValueError naming the problem for anything else or a missing file.
    """
    if hasattr(mic, "feed") or type(mic).__name__ == "BrowserFeed":
        from .audio.browser import feed_of

        try:
            config.extra["browser_mic"] = feed_of(mic)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        config.mic_device = "browser"
        return
    if not isinstance(mic, str):
        raise ValueError(f"mic must be a string, not {type(mic).__name__}")
    if mic == "browser":
        config.extra.pop("browser_mic", None)
        config.mic_device = mic
        return
    if mic in ("device", "stub"):
        config.mic_device = mic
        return
    if mic.startswith("device:"):
        if not mic[7:].strip():
            raise ValueError("mic 'device:NAME' needs a device name after the colon")
        config.mic_device = mic
        return
    if mic == "demo":
        from .data import demo_path

        mic = f"file:{demo_path()}"
    if mic.startswith("file:"):
        path = os.path.abspath(os.path.expanduser(mic[5:]))
        if not os.path.isfile(path):
            raise ValueError(f"mic file not found: {path} (relative paths are read from "
                             f"{os.getcwd()}; mic='demo' is the bundled recording)")
        config.mic_device = f"file:{path}"
        config.mic_file = path
        return
    raise ValueError(f"mic must be 'device', 'device:NAME', 'stub', 'demo', 'browser' or 'file:PATH', "
                     f"not {mic!r}")


def backend_env(backend: str) -> dict[str, str]:
    """The environment that makes a built-in guest use ``backend``: ``"stub"`` selects the
    stub transport, any other name (``"local"``, ``"openai"``…) the WebSocket transport
    routed to that backend."""
    if not backend:
        raise ValueError("backend must be a non-empty name")
    if backend == "stub":
        return {ENV_TRANSPORT: "stub", ENV_BACKEND: "stub"}
    return {ENV_TRANSPORT: "websocket", ENV_BACKEND: backend}


def segmentation_env(segmentation: Any) -> dict[str, str]:
    """The environment carrying a segmentation setting (a dict, JSON text or
    :class:`Segmentation`) to a built-in guest, as compact JSON.  ValueError when the ABI
    would refuse it."""
    if isinstance(segmentation, Segmentation):
        return {ENV_SEGMENTATION: dumps(segmentation.to_json())}
    obj = segmentation
    if isinstance(segmentation, (str, bytes)):
        import json

        try:
            obj = json.loads(segmentation)
        except ValueError:
            raise ValueError(f"segmentation is not JSON: {segmentation!r}") from None
    if Segmentation.parse(obj) is None:
        raise ValueError(f"invalid segmentation setting: {obj!r}")
    return {ENV_SEGMENTATION: dumps(obj)}


# -- the ABI from Python, recorded -----------------------------------------------------------

def _arg_summary(value: Any) -> Any:
    """What a trace keeps of one Python argument: ints as they are, short payloads as text,
    long ones as their length."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) <= 96:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return f"<{len(data)} bytes>"
    if isinstance(value, (int, str)) or value is None:
        return value
    return repr(value)[:96]


def _out_summary(rc: Any) -> str | None:
    """What a trace keeps of a Python hostcall's non-integer result."""
    if isinstance(rc, list):  # spear_epoll_wait: ready (fd, revents) pairs
        from .abi.constants import mask_names

        return " ".join(f"{fd}:{'|'.join(n[5:] for n in mask_names(ev))}" for fd, ev in rc) or "[]"
    if isinstance(rc, (bytes, bytearray)):
        return str(_arg_summary(rc))
    return None


class TracedAbi:
    """A Host's hostcall methods for Python callers, each call recorded in the Trace.

    Attribute access falls through to the Host, so ``abi.table``, ``abi.config`` and
    helpers work; only the hostcalls in :data:`TRACED` are wrapped.
    """

    def __init__(self, host: Host, trace: Trace) -> None:
        self._host = host
        self._trace = trace
        self._wrapped: dict[str, Callable[..., Any]] = {}

    @property
    def host(self) -> Host:
        """The Host underneath."""
        return self._host

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._host, name)
        if name not in TRACED:
            return attr
        fn = self._wrapped.get(name)
        if fn is None:
            fn = self._wrapped[name] = self._wrap(name, attr)
        return fn

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        trace, instance, perf = self._trace, self._host.name, time.perf_counter

        def call(*args: Any) -> Any:
            if not trace.recording:
                return method(*args)
            t0 = perf()
            rc = method(*args)
            t1 = perf()
            trace.hostcall(instance, name, tuple(_arg_summary(a) for a in args), rc, t0, t1,
                           _out_summary(rc))
            return rc

        call.__name__ = name
        call.__doc__ = method.__doc__
        return call

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._host)) | set(self.__dict__))

    def __repr__(self) -> str:
        return f"<TracedAbi {self._host!r}>"


# -- guests ---------------------------------------------------------------------------------

class GuestHandle:
    """A guest started by a Session: awaitable, stoppable, inspectable while it runs.

    ``await handle`` (on any running asyncio loop) returns the
    :class:`~spear_lab.runtime.guest.GuestResult`; so does :meth:`wait` (blocking).
    """

    def __init__(self, session: Session, run: GuestRun) -> None:
        self.session = session
        self.run = run
        #: The backend name the guest was started with (None: the guest's own default).
        self.backend: str | None = None
        self.future: concurrent.futures.Future[GuestResult] = concurrent.futures.Future()

    @property
    def name(self) -> str:
        """The instance name (unique in the session; used in the Trace)."""
        return self.run.host.name

    @property
    def host(self) -> Host:
        """The guest's Host fork (its own fd table)."""
        return self.run.host

    @property
    def done(self) -> bool:
        return self.future.done()

    @property
    def result(self) -> GuestResult | None:
        """The result once the guest ended, else None."""
        return self.future.result() if self.future.done() else None

    @property
    def stdout(self) -> str:
        """Guest stdout so far."""
        res = self.result
        return res.stdout if res is not None else self.run.stdout

    @property
    def stderr(self) -> str:
        res = self.result
        return res.stderr if res is not None else self.run.stderr

    @property
    def logs(self) -> list[tuple[float, int, str]]:
        """The guest's ``log`` messages so far, ``(wall time s, level, text)`` (also in
        the result and in ``session.trace.logs(name)``)."""
        res = self.result
        return res.logs if res is not None else list(self.run.host.logs)

    def wait(self, timeout: float | None = None) -> GuestResult:
        """Block until the guest ends; TimeoutError when ``timeout`` passes first."""
        try:
            result = self.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"guest {self.name} still running after {timeout} s") from None
        self._show_state()
        return result

    def stop(self, timeout: float = 5.0) -> GuestResult:
        """Stop the guest (its next hostcall traps, blocked waits wake) and wait for it."""
        if not self.future.done():
            self.run.stop(timeout)
        return self.wait(timeout)

    async def wait_async(self, timeout: float | None = None) -> GuestResult:
        """Await the end; after ``timeout`` seconds the guest is stopped (result returned)."""
        fut = asyncio.wrap_future(self.future)
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, self.stop)
        self._show_state()
        return result

    def __await__(self):
        result = yield from asyncio.wrap_future(self.future).__await__()
        self._show_state()  # from the awaiting cell, so every frontend gets it
        return result

    def transcript(self) -> list[str]:
        """Completed transcript texts of this guest, from the Trace."""
        return self.session.trace.transcript_text(self.name)

    def _finished(self, result: GuestResult) -> None:
        """Done callback (guest thread): detach the fork, drop temp files, resolve, and
        re-render the displayed status line."""
        try:
            self.session.trace.detach(self.run.host)
            self.run.cleanup()
        finally:
            self.session._forget(self)
            if not self.future.done():
                self.future.set_result(result)
            self._show_state()

    _status_line: Any = None

    def _show_state(self) -> None:
        """Re-render every display of this handle in place (no-op when never displayed)."""
        line = self._status_line
        if line is not None:
            line.update()

    def _ipython_display_(self) -> None:
        """Display the status line under a display id, so that it follows the guest's end."""
        from .views.static import StatusLine

        if self._status_line is None:
            self._status_line = StatusLine(self._repr_html_, self.__repr__)
        self._status_line.show()

    def state(self) -> str:
        """``running``, ``exited N``, ``stopped`` or ``trap: …``."""
        res = self.result
        if res is None:
            return "running"
        if res.stopped and res.trap in (None, "stopped"):
            return "stopped"
        if res.trap:
            return f"trap: {res.trap}"
        return f"exited {res.exit_code}"

    def __repr__(self) -> str:
        return f"<GuestHandle {self.name} {self.state()}>"

    def _repr_html_(self) -> str:
        from .views.html import handle_html

        return handle_html(self)


# -- the session ----------------------------------------------------------------------------

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
        self.context = HostContext(config, trace=self.trace)
        self.host = Host(context=self.context, name=name)
        self.trace.attach(self.host)
        self.abi = TracedAbi(self.host, self.trace)
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
        """A new :class:`spear_lab.api.RtAsr` on the Python host (calls recorded)."""
        from .api import RtAsr

        return RtAsr(self.abi, **params)

    def epoll(self):
        """A new :class:`spear_lab.api.Epoll` on the Python host (calls recorded)."""
        from .api import Epoll

        return Epoll(self.abi)

    def mic(self, **params: Any):
        """A new :class:`spear_lab.api.Mic` on the Python host (calls recorded)."""
        from .api import Mic

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
        from .views import Dashboard

        view = Dashboard(self.trace, **kwargs)
        self._register_view(view)
        return view

    # -- status ---------------------------------------------------------------------------

    @property
    def fds(self):
        """The Python host's fd table, displayable (``FdTable``)."""
        from .views.html import FdTable

        return FdTable(self.host)

    def status(self):
        """Guests (name, state, duration), open fds of the Python host, trace counts
        (a dict that displays as a table)."""
        from .views.html import Status

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
        from .views._refresh import displayed_views

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
        from .views.html import session_html

        return session_html(self)
