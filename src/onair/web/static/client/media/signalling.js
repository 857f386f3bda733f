// WebRTC signalling over the stream's realtime channel (`stream:{id}`, joined as a private
// channel so only signed-in members of the stream receive it). Messages are
// {stream_id, from, to, kind, data} and addressed: every peer ignores messages that are not for
// it or that name another stream.
//
// The host sends broadcast event "webrtc:signal"; the hub lets only the stream's seller and
// co-hosts send "webrtc:*" events, so a viewer can never pose as the host (offers are only
// accepted from that event). Viewers send the ordinary event "signal", which only hosts listen to.
// `from` must be `viewer:{user}:{tab}` / `host:{user}:{tab}` with the token's own user: the server
// refuses any other (realtime/signals.py), so peers can trust it to route.

export const HOST_EVENT = "webrtc:signal";
export const VIEWER_EVENT = "signal";
export const HOST = "host";
export const EVERYONE = "*";

/** A peer id: `{role}:{user}:{tab}`, role "host" or "viewer", a fresh tab part per page. */
export function peerId(role, userId) {
  return `${role}:${userId}:${crypto.randomUUID().slice(0, 8)}`;
}

/** The user part of a peer id (the whole id when it has no role and tab parts). */
export function peerUser(id) {
  const text = String(id);
  const first = text.indexOf(":");
  const last = text.lastIndexOf(":");
  return first >= 0 && last > first ? text.slice(first + 1, last) : text;
}

export class Signaller {
  /**
   * @param channel  a Channel, not yet subscribed (the listener must precede the join)
   * @param isHost   true in the studio: sends HOST_EVENT, listens to VIEWER_EVENT; else the reverse
   */
  constructor({ channel, streamId, peerId, isHost = false }) {
    this.channel = channel;
    this.streamId = String(streamId);
    this.peerId = peerId;
    this.isHost = isHost;
    this._handlers = new Set();
    channel.listen("broadcast", { event: isHost ? VIEWER_EVENT : HOST_EVENT }, (message) => this._receive(message?.payload));
  }

  /** Deliver to `to` (a peer id, HOST or EVERYONE); resolves "ok" or the failure reason. */
  send(to, kind, data = {}) {
    const event = this.isHost ? HOST_EVENT : VIEWER_EVENT;
    return this.channel.send(event, { stream_id: this.streamId, from: this.peerId, to, kind, data });
  }

  onMessage(handler) {
    this._handlers.add(handler);
    return () => this._handlers.delete(handler);
  }

  _receive(message) {
    if (!message || typeof message !== "object") return;
    if (String(message.stream_id) !== this.streamId || message.from === this.peerId) return;
    const forMe = message.to === this.peerId || message.to === EVERYONE || (this.isHost && message.to === HOST);
    if (!forMe) return;
    for (const handler of this._handlers) handler(message);
  }
}
