"""WebRTC signalling messages must name their real sender.

Local-mode video is negotiated over the stream channel with broadcast events ``webrtc:signal``
(from a host: the seller or a co-host on camera) and ``signal`` (from a viewer), payloads
``{stream_id, from, to, kind, data}`` (``web/static/client/media/signalling.js``). Peers route by
``from``: a host answers, hangs up on or changes the quality layer of the viewer peer that ``from``
names, and a viewer takes offers from the host peer it names. ``from`` is a peer id
``viewer:{user}:{tab}`` or ``host:{user}:{tab}``; were it taken on trust, a buyer could send
``bye`` or ``layer`` as another viewer's peer and cut that viewer's video off. So a client's
signal is accepted only when its ``from`` names the sender's own verified user with the role the
event implies (any spelling that folds onto the event name counts, as for reserved names). The
service role is not checked: server-side senders relay on behalf of others.
"""

from __future__ import annotations

from typing import Any, Final

from onair.domain.identity import Principal
from onair.realtime.policies import role_of
from onair.realtime.protocol.event_names import fold

PEER_ROLE_OF_EVENT: Final = {"signal": "viewer", "webrtc:signal": "host"}
FORGED_SIGNAL: Final = "Unauthorized: a signal's 'from' must be the sender's own peer id"


def forged_signal(principal: Principal | None, event: str, payload: Any) -> bool:
    """True when ``event`` is a signalling event whose ``from`` does not name the sender."""
    peer_role = PEER_ROLE_OF_EVENT.get(fold(event))
    if peer_role is None or role_of(principal) == "service":
        return False
    user = getattr(principal, "user_id", None)
    if not isinstance(user, str) or not user or role_of(principal) == "anon":
        return True
    sender = payload.get("from") if isinstance(payload, dict) else None
    prefix = f"{peer_role}:{user}:"
    # the tab part has no ':' so that user "a" cannot pass for user "a:b" ("viewer:a:b:tab")
    return not (isinstance(sender, str) and sender.startswith(prefix) and ":" not in sender[len(prefix):])
