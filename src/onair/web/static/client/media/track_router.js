// Routes remote tracks to the page for ONE stream. Every publish/unpublish names the stream it
// came from (the local WebRTC session or the Agora client it belongs to); tracks of any other
// stream are refused, so a late event from a previous stream can never show up in this player.
//
// At most one track per (publisher, kind) is attached; a new track for the same slot replaces
// the old one (the page detaches it first).

export class TrackRouter {
  constructor({ streamId, attach = () => {}, detach = () => {} }) {
    this.streamId = String(streamId);
    this._attach = attach;
    this._detach = detach;
    this.slots = new Map(); // "publisher|kind" -> {publisherId, kind, track}
    this.refused = 0;
  }

  publish({ streamId, publisherId, kind, track }) {
    if (String(streamId) !== this.streamId || !track) {
      this.refused += 1;
      return false;
    }
    const key = `${publisherId}|${kind}`;
    const current = this.slots.get(key);
    if (current?.track === track) return true;
    if (current) this._detach(current);
    const slot = { publisherId: String(publisherId), kind, track };
    this.slots.set(key, slot);
    this._attach(slot);
    return true;
  }

  unpublish({ streamId, publisherId, kind }) {
    if (String(streamId) !== this.streamId) {
      this.refused += 1;
      return false;
    }
    const kinds = kind ? [kind] : ["video", "audio"];
    let removed = false;
    for (const k of kinds) {
      const key = `${publisherId}|${k}`;
      const current = this.slots.get(key);
      if (current) {
        this.slots.delete(key);
        this._detach(current);
        removed = true;
      }
    }
    return removed;
  }

  clear() {
    for (const slot of this.slots.values()) this._detach(slot);
    this.slots.clear();
  }

  has(kind) {
    for (const slot of this.slots.values()) if (slot.kind === kind) return true;
    return false;
  }
}
