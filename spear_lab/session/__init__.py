"""The composition root: :class:`Session` wires one Host, its edges, its Trace and its
guests to an event loop; :mod:`.policy` reads user words into host policy; :mod:`.wiring`
fills a host context's ports with the real edges."""

from .core import Session
from .handle import GuestHandle
from .policy import backend_env, guest_env, mic_policy, segmentation_env
from .traced import TracedAbi
from .wiring import host_context, make_host, wire

__all__ = [
    "GuestHandle", "Session", "TracedAbi", "backend_env", "guest_env", "host_context", "make_host",
    "mic_policy", "segmentation_env", "wire",
]
