"""Errors of the realtime protocol core.

Tree (all share :class:`RealtimeError`)::

    RealtimeError
    ├── ProtocolError        a frame we cannot decode (bad JSON, wrong shape, truncated binary);
    │                        the connection logs it and ignores the frame (spec §3.7, "malformed
    │                        frames are logged and ignored, the socket stays open")
    ├── LocalProtocolError   our own misuse of a channel (an illegal transition in channel.py);
    │                        turned into a Supabase-style error reply at the receive boundary
    ├── ReplyError           a push refused with ``phx_reply {status: "error", response: ...}``;
    │                        the channel and the socket stay open
    ├── ChannelShutdown      a channel closed by the server: ``system`` error then ``phx_close``
    │                        (spec §7.3)
    └── Disconnect           the whole socket is closed with a WebSocket close code

Messages shown to clients are fixed strings (Supabase's where one exists); no exception text of an
unexpected error ever reaches a client.
"""

from __future__ import annotations

from typing import Any


class RealtimeError(Exception):
    """Base of every error raised by the realtime package."""


class ProtocolError(RealtimeError):
    """The peer sent a frame that does not decode."""


class LocalProtocolError(RealtimeError):
    """An illegal move on a channel, named after the event, topic and state."""


class ReplyError(RealtimeError):
    """Refuse one push; ``response`` becomes the reply's ``response`` object."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(response)
        self.response = response

    @classmethod
    def reason(cls, reason: str) -> ReplyError:
        return cls({"reason": reason})


class ChannelShutdown(RealtimeError):
    """Close one channel with a ``system`` error message followed by ``phx_close``."""

    def __init__(self, message: str, extension: str = "system") -> None:
        super().__init__(message)
        self.message = message
        self.extension = extension


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
