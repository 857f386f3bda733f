// Keeps a ChatLog equal to the server's chat: the newest history page first, then live
// postgres_changes rows, and a resync (`after_seq` = the last contiguous seq, page by page) after
// every (re)join and whenever a live row reveals a gap. Resyncs are single-flight: a request that
// arrives while one runs makes it run once more, never twice in parallel.
//
// While the realtime socket is down, chat is polled over REST (`pollMs`): chat keeps working under
// partial connectivity, it just arrives a little later. While it is up, a cheap check every
// `verifyMs` catches a lost *last* event (a gap is only visible once a later row arrives, and a
// broker such as Redis pub/sub may drop events without the client's socket noticing). When the
// server says its live delivery was interrupted (the channel's "delivery" event), chat is polled
// as if the socket were down, and resynced at once when delivery is restored.

export const CHAT_TABLE = "chat_messages";

export class ChatSync {
  constructor({ api, streamId, log, timers, pageSize = 100, pollMs = 3000, verifyMs = 30000, onError = () => {} }) {
    this.api = api;
    this.streamId = streamId;
    this.log = log;
    this.timers = timers;
    this.pageSize = pageSize;
    this.pollMs = pollMs;
    this.verifyMs = verifyMs;
    this.onError = onError;
    this._running = null;
    this._again = false;
    this._pollTimer = null;
    this.resyncs = 0;
  }

  /** Add the postgres_changes listener to a channel (before it subscribes). */
  bind(channel) {
    channel.listen(
      "postgres_changes",
      { event: "*", schema: "public", table: CHAT_TABLE, filter: `stream_id=eq.${this.streamId}` },
      (change) => this.applyChange(change),
    );
    channel.on("state", (state) => {
      if (state !== "joined") return;
      this.setLiveDelivery(true); // a join is confirmed only once the server can deliver
      this.resync();
    });
    channel.on("delivery", ({ live }) => {
      this.setLiveDelivery(live);
      if (live) this.resync();
    });
    return this;
  }

  applyChange(change) {
    const row = change.eventType === "DELETE" ? null : change.new;
    if (!row || row.stream_id !== undefined && String(row.stream_id) !== String(this.streamId)) return;
    if (this.log.applyRows([row])) this.resync();
  }

  /** Bring the log up to date with the server; resolves when no newer rows were found. */
  resync() {
    if (this._running) {
      this._again = true;
      return this._running;
    }
    this._running = (async () => {
      try {
        do {
          this._again = false;
          await this._syncOnce();
        } while (this._again);
      } catch (err) {
        this.onError(err);
      } finally {
        this._running = null;
      }
    })();
    return this._running;
  }

  async _syncOnce() {
    this.resyncs += 1;
    if (!this.log.loaded) {
      const page = await this.api.chatPage(this.streamId, { limit: this.pageSize });
      this.log.anchor(page.items);
    }
    // forward from the contiguous cursor until the server has nothing newer
    for (;;) {
      const after = this.log.afterSeq;
      const page = await this.api.chatPage(this.streamId, { after_seq: after, limit: this.pageSize });
      this.log.applyRows(page.items);
      if (page.items.length === 0 || this.log.afterSeq === after || (page.nextCursor === null && page.items.length < this.pageSize)) break;
    }
  }

  /** Older messages for scroll-back: one page before the oldest loaded seq. */
  async loadOlder() {
    if (!this.log.loaded || this.log.floor <= 1) return 0;
    const page = await this.api.chatPage(this.streamId, { before_seq: this.log.floor, limit: this.pageSize });
    this.log.extendBack(page.items);
    return page.items.length;
  }

  /** Poll over REST every pollMs while the realtime link is down, verify every verifyMs while up. */
  setRealtimeAvailable(available) {
    this._socketUp = available;
    this._schedule();
  }

  /** The server's live delivery for this channel stopped (false) or resumed (true). */
  setLiveDelivery(live) {
    this._liveUp = live;
    if (this._socketUp !== undefined) this._schedule();
  }

  _schedule() {
    const period = this._socketUp && this._liveUp !== false ? this.verifyMs : this.pollMs;
    if (this._pollTimer !== null && this._period === period) return;
    if (this._pollTimer !== null) this.timers.clearTimeout(this._pollTimer);
    this._pollTimer = null;
    this._period = period;
    const generation = (this._generation = (this._generation ?? 0) + 1);
    if (!(period > 0)) return;
    const tick = () => {
      this._pollTimer = this.timers.setTimeout(async () => {
        await this.resync();
        if (generation === this._generation) tick();
      }, period);
    };
    tick();
  }

  stop() {
    if (this._pollTimer !== null) this.timers.clearTimeout(this._pollTimer);
    this._pollTimer = null;
    this._period = null;
    this._generation = (this._generation ?? 0) + 1;
  }
}
