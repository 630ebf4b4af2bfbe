"""The rtasr fd's state machine as a table (docs/abi.md §5.1), in the style of h11.

:data:`TRANSITIONS` maps ``state → {event: next state}``; an event not listed for a
state changes nothing.  Internally every state of :class:`RtasrState` is entered:

- ``Connecting``: CONNECT chose a transport that has not started moving data yet;
  :meth:`RtasrFd.opened` (the transport's report) enters ``Connected``;
- ``Draining``: the fd closed while its transport still sends (flush, close frame);
  :meth:`RtasrFd.transport_ended` enters ``Closed``.

The ABI shows neither (docs/abi.md §5.1): :func:`shown` maps ``Connecting`` to
``Connected`` (CONNECT reads ``Connected`` at once) and ``Draining`` to ``Closed`` (a
closed fd answers nothing but -EBADF, so that state is never seen).

A guest call the fd refuses records a :class:`Refusal`: the errno and the rule it broke,
in words (``RtasrFd.last_refusal``), so that a wrapper can explain an errno without
asking GET_STATUS.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from ..abi.constants import Errno, RtasrState

__all__ = ["Event", "Refusal", "TRANSITIONS", "next_state", "shown"]  # and the rules below

_S = RtasrState


class Event(enum.Enum):
    """What moves an rtasr fd from one state to another."""

    SET_PARAM = "SET_PARAM"  #: the guest stored a parameter
    CONNECT = "CONNECT"  #: CONNECT chose a transport (or the host has none)
    OPENED = "OPENED"  #: the transport is moving data
    FAILED = "FAILED"  #: the transport failed, or CONNECT was refused
    CLOSE = "CLOSE"  #: rtasr_close with no transport attached
    CLOSE_DRAINING = "CLOSE_DRAINING"  #: rtasr_close while a transport still runs
    ENDED = "ENDED"  #: every task of the transport ended


_OPEN = {_S.INIT, _S.CONFIGURED, _S.CONNECTING, _S.CONNECTED}

TRANSITIONS: dict[RtasrState, dict[Event, RtasrState]] = {
    _S.INIT: {Event.SET_PARAM: _S.CONFIGURED, Event.CONNECT: _S.CONNECTING},
    _S.CONFIGURED: {Event.SET_PARAM: _S.CONFIGURED, Event.CONNECT: _S.CONNECTING},
    _S.CONNECTING: {Event.OPENED: _S.CONNECTED},
    _S.CONNECTED: {},
    _S.ERROR: {},
    _S.DRAINING: {Event.ENDED: _S.CLOSED},
    _S.CLOSED: {},
}
for _state in _OPEN:
    TRANSITIONS[_state][Event.FAILED] = _S.ERROR
for _state in (*_OPEN, _S.ERROR):
    TRANSITIONS[_state][Event.CLOSE] = _S.CLOSED
    TRANSITIONS[_state][Event.CLOSE_DRAINING] = _S.DRAINING
del _state

#: What GET_STATUS says for an internal state (docs/abi.md §5.1).
_SHOWN = {_S.CONNECTING: _S.CONNECTED, _S.DRAINING: _S.CLOSED}


def next_state(state: RtasrState, event: Event) -> RtasrState | None:
    """The state ``event`` leads to from ``state``, or None when it changes nothing."""
    return TRANSITIONS[state].get(event)


def shown(state: RtasrState) -> RtasrState:
    """The state as the ABI shows it: never ``Connecting`` nor ``Draining``."""
    return _SHOWN.get(state, state)


class Refusal(NamedTuple):
    """A refused guest call: the errno returned and the rule it broke, in words."""

    errno: Errno
    rule: str


# The rules, as ``%`` templates: the fd stores one with its arguments and formats it only
# when ``last_refusal`` is read (refusing stays as cheap as returning -errno).
IN_ERROR = "in state Error: %s"  # args: last_error
PEER_CLOSED = ("the peer closed the connection: writes, SEND_EVENT, FLUSH and CLEAR give "
               "-EPIPE, reads drain (docs/abi.md §5.1)")
QUEUE_FULL = "send queue full: %d of %d bytes"  # args: used, limit
PARAMS_FULL = "parameter payloads over the host's %d bytes (docs/abi.md §5.2)"
UNKNOWN_CMD = "unknown rtasr_ctl command (docs/abi.md §5.6)"
BAD_EVENT = "SEND_EVENT payload is not JSON (docs/abi.md §5.6)"
BAD_SEGMENTATION = "not a valid segmentation (docs/abi.md §6.2)"
BAD_PARAM = 'SET_PARAM needs {"key": non-empty string, "value": …} (docs/abi.md §5.6)'
