"""Opening mic sources for a host: the host policy (docs/abi.md §7.3) and the three sources.

A guest's ``source`` is mapped as follows (the guest never chooses a path):

=============  =========================================================================
``"device"``   ``HostConfig.mic_device``: ``"device"`` = the input device (default or
               the guest's ``device.name``), ``"device:NAME"`` = the input device the host
               names, ``"stub"`` = the stub, ``"file:PATH"`` = the WAV at PATH,
               ``"browser"`` = the browser microphone widget
               (:mod:`spear_lab.audio.browser`: ``HostConfig.browser_mic``,
               else the most recently created ``spear_lab.views.BrowserMic``)
``"file"``     the WAV at ``HostConfig.mic_file``; the stub when the host set none
``"stub"``     the stub
anything else  the stub (reference behaviour; logged)
=============  =========================================================================

File sources follow ``HostConfig.mic_file_realtime``, ``mic_file_loop`` and
``mic_file_tail_ms``; the device
source opens at ``HostConfig.mic_device_rate`` when set, else at the device's default
rate.  A source that cannot start raises SourceError; the mic fd then falls back to the
stub or fails with -EIO, as the guest's ``fallback.to_stub`` says.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..fds.mic import MicConfig, SourceError
from .base import TaskSource
from .filesource import FileSource
from .stub import StubSource

if TYPE_CHECKING:
    from ..fds.mic import MicFd
    from ..host import HostContext

log = logging.getLogger(__name__)


class SourceFactory:
    """The host's audio edge for mic fds (one per :class:`HostContext`)."""

    def __init__(self, context: "HostContext") -> None:
        self.context = context
        self._live: "weakref.WeakSet[TaskSource]" = weakref.WeakSet()
        self._lock = threading.Lock()

    # -- policy ---------------------------------------------------------------------------

    def resolve(self, requested: str) -> tuple[str, str | None]:
        """``(kind, arg)`` the host opens for a guest's ``source``: kind is ``"device"``
        (arg: the device the host named, or None), ``"file"`` (arg: its path) or ``"stub"``.
        SourceError for an invalid policy."""
        cfg = self.context.config
        if requested == "device":
            policy = cfg.mic_device or "device"
            if policy == "device":
                return "device", None
            if policy.startswith("device:") and len(policy) > 7:
                return "device", policy[7:]
            if policy == "stub":
                return "stub", None
            if policy == "browser":
                return "browser", None
            if policy.startswith("file:") and len(policy) > 5:
                return "file", policy[5:]
            log.error("invalid HostConfig.mic_device %r (device[:NAME] | stub | file:PATH | browser)",
                      policy)
            raise SourceError("the host's microphone policy is invalid")
        if requested == "file":
            if cfg.mic_file:
                return "file", str(cfg.mic_file)
            log.warning("mic source \"file\" asked for, but the host set no mic_file: using the stub")
            return "stub", None
        if requested != "stub":
            log.info("unknown mic source %r: using the stub", requested)
        return "stub", None

    # -- opening --------------------------------------------------------------------------

    def open(self, mic: "MicFd", config: MicConfig, generation: int) -> TaskSource:
        """Start the source for ``config`` after the policy; raises SourceError (also for
        unexpected failures of the audio stack, which are logged with their traceback)."""
        kind, path = self.resolve(config.source)
        try:
            handle = self._open(kind, path, mic, config, generation)
        except SourceError:
            raise
        except Exception as exc:
            log.exception("mic fd %d: starting the %s source failed", mic.fd, kind)
            raise SourceError(f"{kind} source failed: {exc.__class__.__name__}") from None
        self._track(handle)
        return handle

    def _open(self, kind: str, path: str | None, mic: "MicFd", config: MicConfig,
              generation: int) -> TaskSource:
        cfg = self.context.config
        if kind == "device":
            from .device import DeviceSource

            self._settle_devices()
            handle: TaskSource = DeviceSource(
                mic, config, generation, self.context.io,
                device=path if path is not None else config.device,  # the host's name wins
                rate=getattr(cfg, "mic_device_rate", None))
        elif kind == "browser":
            from .browser import open_browser

            handle = open_browser(mic, config, generation, self.context.io,
                                  cfg.browser_mic)
        elif kind == "file":
            assert path is not None
            handle = FileSource(mic, config, generation, self.context.io, path,
                                realtime=cfg.mic_file_realtime, loop=cfg.mic_file_loop,
                                tail_ms=getattr(cfg, "mic_file_tail_ms", 0))
        else:
            handle = StubSource(mic, config, generation, self.context.io)
        return handle

    def open_stub(self, mic: "MicFd", config: MicConfig, generation: int) -> TaskSource:
        """Start the stub producer (the fallback)."""
        handle = StubSource(mic, config, generation, self.context.io)
        self._track(handle)
        return handle

    def _track(self, handle: TaskSource) -> None:
        with self._lock:
            self._live.add(handle)

    def _settle_devices(self, timeout: float = 2.0) -> None:
        """Wait for streams being closed, so a device is free before it is reopened."""
        with self._lock:
            closing = [h for h in self._live if h.stopped and hasattr(h, "wait_closed")]
        for h in closing:
            if not h.wait_closed(timeout):  # type: ignore[attr-defined]
                log.warning("an input stream is still closing after %.1f s", timeout)

    def live(self) -> list[TaskSource]:
        """Sources started and not yet garbage (for views and tests)."""
        with self._lock:
            return list(self._live)

    # -- devices --------------------------------------------------------------------------

    def list_devices(self) -> dict[str, Any]:
        """LIST_DEVICES: the input devices a guest's ``source: "device"`` can open
        (none when the host substitutes another source, or without PortAudio)."""
        if (self.context.config.mic_device or "device") != "device":
            return {"default": None, "devices": []}
        from .portaudio import AudioUnavailable, devices

        try:
            found = devices()
        except AudioUnavailable as exc:
            log.info("LIST_DEVICES: %s", exc)
            return {"default": None, "devices": []}
        default = next((d.name for d in found if d.is_default), None)
        return {"default": default, "devices": [d.to_json() for d in found]}

    # -- teardown -------------------------------------------------------------------------

    def close(self, timeout: float = 2.0) -> None:
        """Stop every live source and wait for device streams to close."""
        with self._lock:
            handles = list(self._live)
        for h in handles:
            h.stop()
        for h in handles:
            wait = getattr(h, "wait_closed", None)
            if wait is not None and not wait(timeout):
                log.warning("%r did not close within %.1f s", h, timeout)
