"""The wasmtime edge: guest loading, guest memory, linker, guest runner (the Host is in :mod:`spear_lab.host`)."""

from .guest import GuestResult, GuestRun, Instance, instantiate, run_guest, start_guest
from .linker import SIGNATURES, GuestStopped
from .loading import Guest, builtin_guests, load_guest

__all__ = [
    "Guest", "GuestResult", "GuestRun", "GuestStopped", "Instance", "instantiate", "SIGNATURES", "builtin_guests", "load_guest", "run_guest", "start_guest",
]
