"""The wasmtime edge: Host (hostcalls as methods), guest memory, linker, guest runner."""

from .guest import (
    Guest, GuestResult, GuestRun, Instance, builtin_guests, instantiate, load_guest, run_guest, start_guest,
)
from .host import Host, HostConfig, HostContext
from .ioloop import IoLoop
from .linker import SIGNATURES, GuestStopped

__all__ = [
    "Guest", "GuestResult", "GuestRun", "GuestStopped", "Instance", "instantiate", "Host", "HostConfig", "HostContext",
    "IoLoop", "SIGNATURES", "builtin_guests", "load_guest", "run_guest", "start_guest",
]
