"""The host core: every hostcall as a method of a :class:`Host` over one fd table.

Below the edges: this package never imports transports, audio, views or wasmtime.  The
edges reach a host through the ports of its :class:`HostContext` (filled by
:mod:`spear_lab.session.wiring`), and a :class:`HostConfig` says what they may do.
"""

from .config import DEFAULT_MIC_TAIL_MS, HOST_PARAM_CEILING, HOST_QUEUE_CEILING, HostConfig
from .context import HostContext
from .host import Host
from .ioloop import IoLoop

__all__ = [
    "DEFAULT_MIC_TAIL_MS", "HOST_PARAM_CEILING", "HOST_QUEUE_CEILING", "Host", "HostConfig",
    "HostContext", "IoLoop",
]
