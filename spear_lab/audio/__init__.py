"""The audio edge of the host: microphone sources, pcm16 helpers, resampling.

- :class:`SourceFactory`: what the Host uses to start a mic fd's source (device, file or
  stub, after the host policy of docs/abi.md §7.3).
- :func:`devices`: the input devices PortAudio sees.
- :func:`pcm16_to_float`, :func:`float_to_pcm16`, :func:`remix`, :class:`Resampler`,
  :func:`resample`, :func:`resample_pcm16`: conversions the sources use (and anyone else).
- :mod:`spear_lab.audio.virtual_mic`: a private PulseAudio daemon that plays WAV files into
  a virtual microphone, for tests and headless demos.

Importing this package does not load PortAudio; the device source and :func:`devices` do.
"""

from __future__ import annotations

from .pcm import float_to_pcm16, frame_bytes, pcm16_to_float, remix
from .portaudio import AudioUnavailable, InputDevice, devices
from .resample import Resampler, resample, resample_pcm16
from .sources import SourceFactory

__all__ = [
    "AudioUnavailable",
    "InputDevice",
    "Resampler",
    "SourceFactory",
    "devices",
    "float_to_pcm16",
    "frame_bytes",
    "pcm16_to_float",
    "remix",
    "resample",
    "resample_pcm16",
]
