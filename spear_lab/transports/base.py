"""The interface between an rtasr fd and whatever carries its audio (stub or WebSocket).

The ports live in the sans-I/O core, :mod:`spear_lab.fds.ports`; this module re-exports
them for the edges and for existing imports (``from spear_lab.transports.base import
ConnectRefused``).
"""

from __future__ import annotations

from ..fds.ports import ConnectRefused, Connector, Transport

__all__ = ["ConnectRefused", "Connector", "Transport"]
