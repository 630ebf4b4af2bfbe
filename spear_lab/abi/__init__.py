"""The sans-I/O core of the ABI: constants, the fd table, epoll and generic fd control."""

from .constants import (
    EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollEvent, EpollOp, Errno, FdCtl, FdFlag, FdKind,
    LogLevel, MicCtl, RtasrCtl, RtasrState, SpearError, errno_name, mask_names,
)
from .epoll import EpollFd
from .fdtable import FdEntry, FdTable

__all__ = [
    "EPOLLERR", "EPOLLHUP", "EPOLLIN", "EPOLLOUT", "EpollEvent", "EpollFd", "EpollOp", "Errno",
    "FdCtl", "FdEntry", "FdFlag", "FdKind", "FdTable", "LogLevel", "MicCtl", "RtasrCtl",
    "RtasrState", "SpearError", "errno_name", "mask_names",
]
