// Refresh a credential before it expires. The server says when (`refresh_after`, at 80 % of the
// lifetime for Agora tokens, issue 3); without that we refresh `marginMs` before `expires_at`
// (Agora warns 30 s before expiry). A failed refresh is retried with backoff until the credential
// has expired; then `onExpired` tells the owner (the viewer re-joins with a fresh token).

import { Backoff } from "./backoff.js";

export class RefreshTimer {
  /**
   * @param refresh   async () => ({expiresAt: ms epoch, refreshAfter?: ms epoch}) — gets and applies a new credential
   */
  constructor({ name, refresh, timers, now = () => Date.now(), random = Math.random, marginMs = 30000, onExpired = () => {}, onError = () => {} }) {
    this.name = name;
    this.refresh = refresh;
    this.timers = timers;
    this.now = now;
    this.marginMs = marginMs;
    this.onExpired = onExpired;
    this.onError = onError;
    this._backoff = new Backoff({ baseMs: 1000, capMs: 15000, maxAttempts: Infinity }, random);
    this._timer = null;
    this.expiresAt = null;
    this.dueAt = null;
  }

  /** When to refresh a credential with this expiry (ms epoch). */
  static dueTime({ expiresAt, refreshAfter }, marginMs, issuedNow) {
    const latest = expiresAt - marginMs;
    const due = refreshAfter !== undefined && refreshAfter !== null ? Math.min(refreshAfter, latest) : latest;
    return Math.max(issuedNow, due);
  }

  schedule({ expiresAt, refreshAfter }) {
    this.stop();
    this.expiresAt = expiresAt;
    this.dueAt = RefreshTimer.dueTime({ expiresAt, refreshAfter }, this.marginMs, this.now());
    this._arm(this.dueAt - this.now());
  }

  stop() {
    if (this._timer !== null) this.timers.clearTimeout(this._timer);
    this._timer = null;
  }

  _arm(delay) {
    this._timer = this.timers.setTimeout(() => this._run(), Math.max(0, delay));
  }

  async _run() {
    this._timer = null;
    try {
      const next = await this.refresh();
      this._backoff.reset();
      this.schedule(next);
    } catch (err) {
      this.onError(err);
      if (this.expiresAt !== null && this.now() >= this.expiresAt) {
        this.onExpired(err);
        return;
      }
      const delay = this._backoff.next();
      const untilExpiry = this.expiresAt === null ? delay : this.expiresAt - this.now();
      this._arm(Math.min(delay, Math.max(0, untilExpiry)));
    }
  }
}

/** Expiry (ms epoch) of a JWT from its `exp` claim, or null when it has none / is not a JWT. */
export function jwtExpiry(token) {
  try {
    const part = token.split(".")[1];
    const json = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    return Number.isFinite(json.exp) ? json.exp * 1000 : null;
  } catch {
    return null;
  }
}
