"""Errors of the realtime protocol core.

Tree (all share :class:`RealtimeError`)::

    RealtimeError
    ├── ProtocolError        a frame we cannot decode (bad JSON, wrong shape, truncated binary);
    │                        the connection logs it and ignores the frame (spec §3.7, "malformed
    │                        frames are logged and ignored, the socket stays open")
    ├── LocalProtocolError   our own misuse of a channel (an illegal transition in channel.py);
    │                        turned into a Supabase-style error reply at the receive boundary
    ├── FilterError          a postgres_changes filter refused at join (filters.py)
    ├── TokenRejected        a token (or the connection's rate) refused: the connection is
    │                        refused, the join gets an error reply, the REST call a 401/429
    └── Disconnect           the whole socket is closed with a WebSocket close code

Refused pushes and server-closed channels are answered by the dispatcher directly (error replies,
``system`` messages); they have no exception class.

Messages shown to clients are fixed strings (Supabase's where one exists); no exception text of an
unexpected error ever reaches a client.
"""

from __future__ import annotations


class RealtimeError(Exception):
    """Base of every error raised by the realtime package."""


class ProtocolError(RealtimeError):
    """The peer sent a frame that does not decode."""


class LocalProtocolError(RealtimeError):
    """An illegal move on a channel, named after the event, topic and state."""


class TokenRejected(RealtimeError):
    """``message`` is Supabase's text; ``code`` the join-error prefix (spec §3.6)."""

    def __init__(self, message: str, code: str = "InvalidJWTToken") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Disconnect(RealtimeError):
    """Close the socket. Codes: 1000 normal, 1001 going away (rate limits, as Supabase does),
    1008 policy violation (auth), 1009 too big, 1011 internal error, 4000+ onair-specific
    (4008 slow consumer: the client may reconnect at once and resync)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


SLOW_CONSUMER = Disconnect(4008, "slow consumer")
WRITE_FAILED = Disconnect(1011, "write failed")
HEARTBEAT_TIMEOUT = Disconnect(1000, "heartbeat timeout")
