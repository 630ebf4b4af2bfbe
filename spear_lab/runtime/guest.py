"""Running guests: in this thread (:class:`Instance`) or in a worker thread with its own
Store (:class:`GuestRun`).

A guest comes from :func:`~spear_lab.runtime.loading.load_guest` (a path, wasm bytes, WAT
text or a built-in name; re-exported here).  :meth:`GuestRun.start` runs ``_start`` (or
``main``, or a named export) in a thread; stdout and stderr go to files readable while it
runs; ``proc_exit`` ends it normally with its status.  :meth:`GuestRun.stop` traps the
next hostcall, wakes blocked waits and interrupts pure computation by epoch, within 100 ms;
the result's trap says ``stopped`` only when the stop ended the run, not when the guest
trapped by itself meanwhile.
Every fd the guest opened is closed when it ends, however it ends.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import wasmtime

from ..host import Host
from .linker import GuestStopped, define_spear
from .loading import Guest, builtin_guests, guest_dirs, load_guest
from .memory import GuestMemory

__all__ = [
    "Guest", "GuestResult", "GuestRun", "Instance", "RunOptions", "builtin_guests", "guest_dirs",
    "instantiate", "load_guest", "new_engine", "run_guest", "start_guest",
]

log = logging.getLogger(__name__)


def new_engine() -> wasmtime.Engine:
    """An engine with epoch interruption (for stop) and memories that never move (so the
    cached memory view stays valid across growth)."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.memory_may_move = False
    return wasmtime.Engine(config)


@dataclass
class GuestResult:
    """How a guest run ended."""

    name: str
    exit_code: int | None
    stdout: str
    stderr: str
    trap: str | None = None
    stopped: bool = False
    duration_s: float = 0.0
    fds_closed: int = 0
    value: Any = None
    #: The guest's ``log`` messages ``(wall time s, level, text)`` (the newest ones the
    #: host kept; the reference SDK's ``printf`` lands here).
    logs: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the guest returned or exited with status 0."""
        return self.exit_code == 0 and self.trap is None

    @property
    def outcome(self) -> str:
        """``exit N``, ``stopped``, ``trap: …`` or ``returned``."""
        if self.stopped and self.trap in (None, "stopped"):
            return "stopped"
        if self.trap:
            return f"trap: {self.trap}"
        return "returned" if self.exit_code is None else f"exit {self.exit_code}"

    def summary(self) -> str:
        """One line: name, outcome, duration, output sizes."""
        out = f"{len(self.stdout.splitlines())} lines of stdout" if self.stdout else "no stdout"
        err = f", {len(self.stderr.splitlines())} of stderr" if self.stderr else ""
        return f"{self.name}: {self.outcome} after {self.duration_s:.2f} s; {out}{err}"

    def __repr__(self) -> str:
        return f"<GuestResult {self.summary()} (.stdout, .stderr, .logs)>"

    def _repr_html_(self) -> str:
        import html

        return (f"<div style='font-size:14px'><b>{html.escape(self.name)}</b>: "
                f"{html.escape(self.outcome)} after {self.duration_s:.2f} s — "
                f"<code>.stdout</code> ({len(self.stdout.splitlines())} lines), "
                f"<code>.stderr</code>, <code>.logs</code></div>")


@dataclass
class RunOptions:
    """Arguments, environment and entry point of one run."""

    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    entry: str | None = None
    call_args: Sequence[Any] = ()


class Instance:
    """One instantiated guest in the calling thread: call exports, read and write memory.

    For step-by-step teaching and tests; :class:`GuestRun` runs one in a worker thread.
    Stdout and stderr go to files in ``workdir``.
    """

    def __init__(self, guest: Guest, host: Host, options: "RunOptions | None" = None,
                 workdir: str | os.PathLike[str] | None = None,
                 engine: wasmtime.Engine | None = None,
                 extra_imports: Callable[[wasmtime.Linker], None] | None = None) -> None:
        opts = options or RunOptions()
        self.guest = guest
        self.host = host
        self.engine = engine = engine or new_engine()
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="spear-guest-")
            workdir = self._tmp.name
        self.stdout_path = Path(workdir) / "stdout"
        self.stderr_path = Path(workdir) / "stderr"
        module = wasmtime.Module(engine, guest.wasm)
        self.store = wasmtime.Store(engine)
        self.store.set_epoch_deadline(1)
        wasi = wasmtime.WasiConfig()
        wasi.argv = [guest.name, *opts.args]
        wasi.env = list(dict(opts.env).items())
        wasi.stdout_file = str(self.stdout_path)
        wasi.stderr_file = str(self.stderr_path)
        self.store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.mem = GuestMemory()
        #: the ``spear`` imports; ``glue.stop_raised`` tells whether a hostcall trapped the
        #: guest for a stop request
        self.glue = define_spear(linker, host, self.mem)
        if extra_imports is not None:
            extra_imports(linker)
        self.instance = linker.instantiate(self.store, module)
        self.exports = self.instance.exports(self.store)
        memory = self.exports.get("memory")
        self.mem.bind(memory if isinstance(memory, wasmtime.Memory) else None, self.store)

    def func(self, name: str) -> wasmtime.Func:
        """The exported function ``name``; LookupError naming the exports otherwise."""
        func = self.exports.get(name)
        if not isinstance(func, wasmtime.Func):
            raise LookupError(f"guest {self.guest.name} exports no function {name!r}")
        return func

    def call(self, name: str, *args: Any) -> Any:
        """Call the exported function ``name`` with ``args``."""
        return self.func(name)(self.store, *args)

    def read(self, ptr: int, length: int) -> bytes:
        """Guest memory bytes; ValueError when out of range."""
        data = self.mem.read(ptr, length)
        if data is None:
            raise ValueError(f"range {ptr}+{length} is outside guest memory")
        return data

    def write(self, ptr: int, data: bytes) -> None:
        """Write guest memory; ValueError when out of range."""
        if not self.mem.write(ptr, data):
            raise ValueError(f"range {ptr}+{len(data)} is outside guest memory")

    def read_u32(self, ptr: int) -> int:
        value = self.mem.read_u32(ptr)
        if value is None:
            raise ValueError(f"u32 at {ptr} is outside guest memory")
        return value

    def write_u32(self, ptr: int, value: int) -> None:
        if not self.mem.write_u32(ptr, value):
            raise ValueError(f"u32 at {ptr} is outside guest memory")

    @property
    def stdout(self) -> str:
        return _read_text(self.stdout_path)

    def close(self) -> int:
        """Close the instance's fds and release its store; returns how many fds were open."""
        closed = self.host.close()
        self.mem.release()
        self.exports = self.instance = None  # type: ignore[assignment]
        self.store = None  # type: ignore[assignment]
        if self._tmp is not None:
            self._tmp.cleanup()
        return closed

    def __enter__(self) -> "Instance":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def instantiate(host: Host, source: Any, args: Sequence[str] = (),
                env: Mapping[str, str] | None = None) -> Instance:
    """Instantiate ``source`` in this thread on a fork of ``host`` (own fd table)."""
    guest = load_guest(source)
    return Instance(guest, host.fork(guest.name), RunOptions(args, dict(env or {})))


class GuestRun:
    """One guest instance running in its own thread, on its own fd table (a Host fork)."""

    STOP_GRACE_S = 0.1
    #: Seconds between two epoch bumps while a stop waits.
    STOP_TICK_S = 0.005

    def __init__(self, guest: Guest, host: Host, options: RunOptions | None = None) -> None:
        self.guest = guest
        self.host = host
        self.options = options or RunOptions()
        self._dir = tempfile.TemporaryDirectory(prefix="spear-guest-")
        self.stdout_path = Path(self._dir.name) / "stdout"
        self.stderr_path = Path(self._dir.name) / "stderr"
        self._engine: wasmtime.Engine | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self.result: GuestResult | None = None
        self.started_at: float | None = None
        self._callbacks: list = []

    # -- control --------------------------------------------------------------------------

    def start(self) -> "GuestRun":
        """Compile and start the guest in a worker thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError(f"guest {self.guest.name} already started")
        self._engine = new_engine()
        wasmtime.Module.validate(self._engine, self.guest.wasm)  # errors raise here, in the caller
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._main,
                                        name=f"spear-guest-{self.guest.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> GuestResult:
        """Stop the guest (trap at the next hostcall, wake waits, interrupt computation)
        and wait until its thread has ended; TimeoutError after ``timeout`` seconds.

        Works at any moment, right after :meth:`start` included: the epoch is bumped
        every few milliseconds until the run ends, so a guest whose store was created
        (or whose entry was called) after the first bump is interrupted too.
        """
        self._stop.set()
        self.host.request_stop()
        if self._thread is None:
            raise RuntimeError(f"guest {self.guest.name} was not started")
        deadline = time.monotonic() + timeout
        while not self._done.wait(self.STOP_TICK_S):
            if self._engine is not None:
                self._engine.increment_epoch()
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest {self.guest.name} still running after {timeout} s")
        self._thread.join(max(0.0, deadline - time.monotonic()))
        assert self.result is not None
        return self.result

    def wait(self, timeout: float | None = None) -> GuestResult:
        """Wait for the end; TimeoutError when ``timeout`` passes first."""
        if self._thread is None:
            raise RuntimeError(f"guest {self.guest.name} was not started")
        if not self._done.wait(timeout):
            raise TimeoutError(f"guest {self.guest.name} still running after {timeout} s")
        assert self.result is not None
        return self.result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def finished(self, timeout: float = 0.0) -> bool:
        """Wait up to ``timeout`` seconds; True once the run has ended."""
        return self._done.wait(timeout)

    @property
    def stdout(self) -> str:
        """Guest stdout so far (UTF-8, invalid bytes replaced)."""
        return _read_text(self.stdout_path)

    @property
    def stderr(self) -> str:
        """Guest stderr so far."""
        return _read_text(self.stderr_path)

    def add_done_callback(self, fn) -> None:
        """Call ``fn(result)`` in the guest thread when the run ends (at once if ended)."""
        if self._done.is_set():
            fn(self.result)
        else:
            self._callbacks.append(fn)

    # -- the worker thread ----------------------------------------------------------------

    def _main(self) -> None:
        exit_code: int | None = None
        trap: str | None = None
        value = None
        inst: Instance | None = None
        try:
            inst = Instance(self.guest, self.host, self.options, self._dir.name, self._engine)
            entry = self.options.entry or ("_start" if "_start" in inst.exports else "main")
            if self._stop.is_set():  # stopped before it began
                trap = "stopped"
            else:
                value = inst.call(entry, *self.options.call_args)
                exit_code = 0
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        except Exception as exc:  # a trap, a link error or a host bug: report, never crash
            trap = self._trap_of(exc, inst)
        finally:
            closed = inst.close() if inst is not None else self.host.close()
            del inst
            self.result = GuestResult(
                name=self.guest.name, exit_code=exit_code, stdout=self.stdout, stderr=self.stderr,
                trap=trap, stopped=self._stop.is_set(),
                duration_s=time.monotonic() - (self.started_at or time.monotonic()),
                fds_closed=closed, value=value, logs=list(self.host.logs),
            )
            self._done.set()
            for fn in self._callbacks:
                try:
                    fn(self.result)
                except Exception:  # pragma: no cover
                    log.exception("guest done callback failed")

    def _trap_of(self, exc: Exception, inst: "Instance | None") -> str:
        """``"stopped"`` when :meth:`stop` caused ``exc``, else what went wrong, in one line.

        The stop's two causes, by type: a hostcall raised :class:`GuestStopped` (re-raised
        by wasmtime, and recorded on the glue in case wasmtime hands back only a bare trap),
        or the epoch bump interrupted computation (a trap with code ``INTERRUPT``).  Any
        other trap (``unreachable``, out of bounds…) is the guest's own, stop or not.
        """
        if isinstance(exc, GuestStopped) or (inst is not None and inst.glue.stop_raised):
            return "stopped"
        if isinstance(exc, wasmtime.Trap):
            if self._stop.is_set() and exc.trap_code is wasmtime.TrapCode.INTERRUPT:
                return "stopped"
            return _trap_message(exc)
        if isinstance(exc, wasmtime.WasmtimeError):
            return _trap_message(exc)
        log.debug("guest %s failed", self.guest.name, exc_info=exc)
        return f"{type(exc).__name__}: {exc}"

    def cleanup(self) -> None:
        """Remove the stdout/stderr files (after the run ended)."""
        if self._done.is_set():
            self._dir.cleanup()

    def __repr__(self) -> str:
        state = "done" if self.done else ("running" if self._thread else "new")
        return f"<GuestRun {self.guest.name} {state}>"


def _trap_message(exc: Exception) -> str:
    """A wasmtime error in one line: what failed and its cause, without the backtrace."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("error while executing") or len(lines) == 1:
        return lines[-1]
    return f"{lines[0]}: {lines[-1]}"


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def start_guest(host: Host, source: Any, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                entry: str | None = None, call_args: Sequence[Any] = ()) -> GuestRun:
    """Start ``source`` on a fork of ``host`` (its own fd table); returns the run at once."""
    guest = load_guest(source)
    run = GuestRun(guest, host.fork(guest.name), RunOptions(args, dict(env or {}), entry, call_args))
    return run.start()


def run_guest(host: Host, source: Any, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
              entry: str | None = None, call_args: Sequence[Any] = (),
              timeout: float | None = None) -> GuestResult:
    """Run ``source`` to the end (stopping it after ``timeout`` seconds if given)."""
    run = start_guest(host, source, args, env, entry, call_args)
    try:
        return run.wait(timeout)
    except TimeoutError:
        return run.stop()
    finally:
        run.cleanup()
