"""A guest started by a Session: awaitable, stoppable, inspectable while it runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TYPE_CHECKING, Any

from ..host import Host
from ..runtime.guest import GuestResult, GuestRun

if TYPE_CHECKING:
    from .core import Session

__all__ = ["GuestHandle"]


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

    def _ended(self) -> GuestResult | None:
        """The run's result as soon as the run has one (before the future resolves)."""
        return self.result or self.run.result

    @property
    def stdout(self) -> str:
        """Guest stdout so far."""
        res = self._ended()
        return res.stdout if res is not None else self.run.stdout

    @property
    def stderr(self) -> str:
        res = self._ended()
        return res.stderr if res is not None else self.run.stderr

    @property
    def logs(self) -> list[tuple[float, int, str]]:
        """The guest's ``log`` messages so far, ``(wall time s, level, text)`` (also in
        the result and in ``session.trace.logs(name)``)."""
        res = self._ended()
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
        from ..views.static import StatusLine

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
        from ..views.html import handle_html

        return handle_html(self)
