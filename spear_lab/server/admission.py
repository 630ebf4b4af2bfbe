"""Who may open a session: the checks made right after the WebSocket upgrade.

:func:`rejection` looks at one upgraded request (sans I/O) and returns the
:class:`Rejection` to send — an OpenAI ``error`` event and a close code — or None.
In the OpenAI profile (the default), in this order:

1. a missing or wrong API key (when auth is required): ``invalid_api_key``, close
   3000 — OpenAI upgrades first, then refuses (issue 13, observed);
2. the ``OpenAI-Beta: realtime=v1`` header on a GA server:
   ``beta_api_shape_disabled``, close 4000 (observed, see docs/server.md);
3. a URL with neither ``intent`` nor ``model``: ``missing_required_parameter``
   (param ``model``), close 4000;
4. more than ``max_sessions`` open sessions: ``session_limit_reached``, close 1013
   (try again later).

The lenient profile keeps the older acceptance: auth is refused before the upgrade
(HTTP 401, by the caller), beta is refused only with ``strict_ga``, any URL shape is
accepted; the session cap applies to both.

:func:`authorized` and :func:`key_state` read a request's credentials;
:func:`is_loopback` tells whether a bind address needs them by default.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Mapping, Protocol

from .events import Ids, error_event

__all__ = ["Rejection", "rejection", "authorized", "key_state", "is_loopback", "BETA_REJECTION",
           "CLOSE_AUTH", "CLOSE_PROTOCOL", "CLOSE_BUSY", "CLOSE_POLICY"]

BETA_REJECTION = ("The Realtime Beta API is no longer supported. Please use /v1/realtime "
                  "for the GA API.")
CLOSE_AUTH = 3000
"""Close code after ``invalid_api_key`` (3000: the registered "Unauthorized")."""
CLOSE_PROTOCOL = 4000
"""OpenAI's close code after a fatal ``invalid_request_error``."""
CLOSE_BUSY = 1013
"""Try again later: the session cap is reached."""
CLOSE_POLICY = 1008
"""Policy violation: a client that does not read its events."""
MISSING_KEY = ("You didn't provide an API key. You need to provide your API key in an "
               "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
WRONG_KEY = "Incorrect API key provided."
KEY_SUBPROTOCOL = "openai-insecure-api-key."
"""Prefix of the WebSocket subprotocol that carries an API key (browsers' way)."""


class Headers(Protocol):
    """Request headers, as websockets' ``Headers``."""

    def get(self, key: str, default: str = ...) -> str: ...

    def get_all(self, key: str) -> list[str]: ...


@dataclass(frozen=True)
class Rejection:
    """The ``event`` to send, then the close ``code`` and ``reason``."""

    event: dict
    code: int
    reason: str


def _reject(ids: Ids, code: str, message: str, close: int, param: str | None = None) -> Rejection:
    return Rejection(error_event(ids, code, message, param), close,
                     f"invalid_request_error.{code}")


def rejection(ids: Ids, *, lenient: bool, key_state: str, beta_header: bool, strict_ga: bool,
              dialect: str, query: Mapping[str, list[str]], sessions: int,
              max_sessions: int) -> Rejection | None:
    """The rejection of one upgraded connection, or None to accept it.

    ``key_state``: ``"ok"`` (or auth not required), ``"missing"`` or ``"wrong"``;
    ``dialect``: the server's dialect option (a beta server accepts the beta header);
    ``sessions``: sessions open now, not counting this one."""
    if key_state != "ok" and not lenient:
        return _reject(ids, "invalid_api_key", MISSING_KEY if key_state == "missing" else WRONG_KEY,
                       CLOSE_AUTH)
    if beta_header and (strict_ga or (not lenient and dialect == "ga")):
        return _reject(ids, "beta_api_shape_disabled", BETA_REJECTION, CLOSE_PROTOCOL)
    if not lenient and not beta_header and dialect == "ga" \
            and not query.get("intent") and not query.get("model"):
        return _reject(ids, "missing_required_parameter", "Missing required parameter: 'model'. "
                       "Connect with ?intent=transcription or ?model=….", CLOSE_PROTOCOL, "model")
    if sessions >= max_sessions:
        return Rejection(error_event(ids, "session_limit_reached",
                                     f"This server accepts at most {max_sessions} concurrent "
                                     "sessions; try again later.", None, None, "server_error"),
                         CLOSE_BUSY, "session_limit_reached")
    return None


def authorized(headers: Headers, api_key: str | None) -> bool:
    """The request carries ``api_key``: ``Authorization: Bearer <key>`` or the
    ``openai-insecure-api-key.<key>`` subprotocol (compared in constant time)."""
    key = api_key or ""
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip(), key):
        return True
    for proto in headers.get_all("Sec-WebSocket-Protocol"):
        for p in proto.split(","):
            p = p.strip()
            if p.startswith(KEY_SUBPROTOCOL) and hmac.compare_digest(p[len(KEY_SUBPROTOCOL):], key):
                return True
    return False


def key_state(headers: Headers, api_key: str | None, need_auth: bool) -> str:
    """``"ok"`` (or auth not required), ``"missing"`` or ``"wrong"``: the
    ``key_state`` that :func:`rejection` takes."""
    if not need_auth or authorized(headers, api_key):
        return "ok"
    offered = headers.get("Authorization") or any(
        KEY_SUBPROTOCOL in p for p in headers.get_all("Sec-WebSocket-Protocol"))
    return "wrong" if offered else "missing"


def is_loopback(host: str) -> bool:
    """``host`` (a bind address) is ``localhost`` or a loopback IP; ``""`` (every
    interface) is not."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
