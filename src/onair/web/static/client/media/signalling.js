// WebRTC signalling over a realtime channel: broadcast event "signal" with
// {stream_id, from, to, kind, data}. The channel is private (only the stream's seller and viewers
// may join it; the server enforces that), and messages are addressed: every peer ignores messages
// that are not for it or that name another stream.

export const SIGNAL_EVENT = "signal";
export const HOST = "host";
export const EVERYONE = "*";

export class Signaller {
  /** @param channel  a Channel, not yet subscribed (the listener must precede the join) */
  constructor({ channel, streamId, peerId }) {
    this.channel = channel;
    this.streamId = String(streamId);
    this.peerId = peerId;
    this._handlers = new Set();
    channel.listen("broadcast", { event: SIGNAL_EVENT }, (message) => this._receive(message?.payload));
  }

  /** Deliver to `to` (a peer id, HOST or EVERYONE); resolves "ok" or the failure reason. */
  send(to, kind, data = {}) {
    return this.channel.send(SIGNAL_EVENT, { stream_id: this.streamId, from: this.peerId, to, kind, data });
  }

  onMessage(handler) {
    this._handlers.add(handler);
    return () => this._handlers.delete(handler);
  }

  _receive(message) {
    if (!message || typeof message !== "object") return;
    if (String(message.stream_id) !== this.streamId || message.from === this.peerId) return;
    if (message.to !== this.peerId && message.to !== EVERYONE && !(message.to === HOST && this.peerId.startsWith(`${HOST}:`))) {
      return;
    }
    for (const handler of this._handlers) handler(message);
  }
}
