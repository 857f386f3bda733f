// Chat sends that survive reconnects and reloads. Each message gets a `client_msg_id` once, when
// the user presses send; every retry repeats the same id, and the server answers a repeat with
// the original row (issue 4), so a message is stored once however often it is retried.
//
// Sends go out one at a time in the order they were written (the server's seq then follows the
// user's order). A retryable failure (no network, 408, 429, 5xx) keeps the message queued and
// retries after a backoff or when the connection comes back; a refusal (e.g. 403 muted, 409
// stream ended) marks it failed with the server's reason, and it leaves the queue.

import { Backoff } from "./backoff.js";
import { Emitter } from "./emitter.js";

export class Outbox extends Emitter {
  constructor({ api, streamId, timers, now = () => Date.now(), random = Math.random, newId = () => crypto.randomUUID(), storage = null, backoff = { baseMs: 500, capMs: 10000, maxAttempts: Infinity } }) {
    super();
    this.api = api;
    this.streamId = streamId;
    this.timers = timers;
    this.now = now;
    this.newId = newId;
    this.storage = storage;
    this._backoff = new Backoff(backoff, random);
    this._timer = null;
    this._sending = false;
    this.queue = this._load();
    this.failed = [];
  }

  /** Queue a message; returns its entry (client_msg_id, body, state "pending"). */
  send(body) {
    const entry = { client_msg_id: this.newId(), body, client_sent_at: new Date(this.now()).toISOString(), state: "pending" };
    this.queue.push(entry);
    this._save();
    this.emit("change");
    this.flush();
    return entry;
  }

  /** Try to deliver everything queued now (called on send, on reconnect, by the retry timer). */
  async flush() {
    if (this._sending) return;
    if (this._timer !== null) {
      this.timers.clearTimeout(this._timer);
      this._timer = null;
    }
    this._sending = true;
    try {
      while (this.queue.length) {
        const entry = this.queue[0];
        try {
          const row = await this.api.sendChat(this.streamId, entry);
          this.queue.shift();
          this._backoff.reset();
          this._save();
          this.emit("delivered", entry, row);
          this.emit("change");
        } catch (err) {
          if (err?.retryable) {
            const delay = Math.max(err.retryAfterMs ?? 0, this._backoff.next());
            this._timer = this.timers.setTimeout(() => {
              this._timer = null;
              this.flush();
            }, delay);
            this.emit("retrying", entry, err);
            return;
          }
          this.queue.shift();
          this._save();
          this.failed.push({ ...entry, state: "failed", error: err?.message ?? String(err), type: err?.type });
          this.emit("failed", entry, err);
          this.emit("change");
        }
      }
    } finally {
      this._sending = false;
    }
  }

  pending() {
    return [...this.queue];
  }

  stop() {
    if (this._timer !== null) this.timers.clearTimeout(this._timer);
    this._timer = null;
  }

  _key() {
    return `onair.outbox.${this.streamId}`;
  }

  _load() {
    if (!this.storage) return [];
    try {
      const saved = JSON.parse(this.storage.getItem(this._key()) ?? "[]");
      return Array.isArray(saved) ? saved.filter((e) => e && typeof e.client_msg_id === "string" && typeof e.body === "string") : [];
    } catch {
      return [];
    }
  }

  _save() {
    if (!this.storage) return;
    try {
      this.storage.setItem(this._key(), JSON.stringify(this.queue));
    } catch {
      // storage full or disabled: the queue still lives in memory
    }
  }
}
