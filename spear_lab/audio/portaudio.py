"""Input devices through sounddevice (PortAudio): loading, listing, choosing.

PortAudio is not thread-safe; every call that opens, closes or enumerates goes through
:data:`PA_LOCK`.  PortAudio enumerates devices once, when it is initialised; call
``devices(refresh=True)`` after the audio setup changed (e.g. a virtual microphone was
started) — it re-initialises PortAudio when none of our streams is open.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..fds.mic import SourceError

log = logging.getLogger(__name__)

#: Serialises PortAudio calls (open, close, query, re-initialise).
PA_LOCK = threading.RLock()
#: What to install when the PortAudio library is missing.
PORTAUDIO_HINT = ("PortAudio library not found: install it with "
                  "`apt-get install libportaudio2` (Debian/Ubuntu)")

_sd: ModuleType | None = None
_open_streams = 0


class AudioUnavailable(SourceError, RuntimeError):
    """Device capture is impossible here (no PortAudio, no sounddevice); says what to
    install."""


@dataclass(frozen=True)
class InputDevice:
    """One capture device as PortAudio reports it."""

    name: str
    index: int
    channels: int  #: most input channels
    default_rate: int  #: default sample rate, Hz
    is_default: bool

    def to_json(self) -> dict[str, Any]:
        """The LIST_DEVICES entry."""
        return {"channels": self.channels, "default_rate_hz": self.default_rate,
                "index": self.index, "is_default": self.is_default, "name": self.name}


def sounddevice() -> ModuleType:
    """The ``sounddevice`` module; AudioUnavailable naming the package to install."""
    global _sd
    if _sd is None:
        try:
            import sounddevice as sd
        except OSError:
            raise AudioUnavailable(PORTAUDIO_HINT) from None
        except ImportError:
            raise AudioUnavailable("the Python package sounddevice is missing: "
                                   "install it with `pip install sounddevice`") from None
        _sd = sd
    return _sd


def stream_opened() -> None:
    """Count a stream we opened (blocks PortAudio re-initialisation)."""
    global _open_streams
    with PA_LOCK:
        _open_streams += 1


def stream_closed() -> None:
    """Count a stream we closed."""
    global _open_streams
    with PA_LOCK:
        _open_streams = max(0, _open_streams - 1)


def refresh_portaudio() -> bool:
    """Re-initialise PortAudio so it sees the current devices.  False (and no change)
    while one of our streams is open."""
    sd = sounddevice()
    with PA_LOCK:
        if _open_streams:
            log.info("not re-initialising PortAudio: %d stream(s) open", _open_streams)
            return False
        sd._terminate()
        sd._initialize()
        return True


def devices(refresh: bool = False) -> list[InputDevice]:
    """Input devices (those with at least one input channel), in PortAudio order.

    ``refresh`` re-initialises PortAudio first (see :func:`refresh_portaudio`).  Raises
    :class:`AudioUnavailable` when PortAudio or sounddevice is missing.
    """
    sd = sounddevice()
    with PA_LOCK:
        if refresh:
            refresh_portaudio()
        found = sd.query_devices()
        default = _default_index(sd)
    return [
        InputDevice(str(d["name"]), int(d["index"]), int(d["max_input_channels"]),
                    int(round(float(d["default_samplerate"]))), int(d["index"]) == default)
        for d in found if int(d["max_input_channels"]) > 0
    ]


def _default_index(sd: ModuleType) -> int:
    try:
        info = sd.query_devices(kind="input")
    except Exception:  # PortAudioError or ValueError: no default input device
        return -1
    return int(info["index"])


def find_input(spec: str | int | None) -> InputDevice:
    """The device ``spec`` names: None = the default input, an int = a PortAudio index,
    a string = an exact device name.  SourceError with the reference messages
    (``no default input device``, ``input device not found: <spec>``)."""
    listed = devices()
    if spec is None:
        for dev in listed:
            if dev.is_default:
                return dev
        raise SourceError("no default input device")
    for dev in listed:
        if (dev.index == spec) if isinstance(spec, int) else (dev.name == spec):
            return dev
    raise SourceError(f"input device not found: {spec}")
