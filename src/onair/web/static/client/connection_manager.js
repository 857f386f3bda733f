// The realtime connection's life, as the user sees it:
//
//   connecting ──open──▶ connected ◀──rtt good──▶ degraded
//        ▲                   │ lost (close / heartbeat timeout)
//        │                   ▼
//     retry() ◀── failed ◀── reconnecting ──(delay with full jitter)──▶ connect again
//                 (after maxAttempts failed retries: a notice with a retry button)
//
// After every open, the socket rejoins every wanted channel (each channel's "joined" event then
// triggers the chat resync), the heartbeat loop restarts and `restored` is emitted so owners can
// flush outboxes. The policy numbers come from the server's settings (the page's config).

import { Backoff } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { LinkQuality } from "./link_quality.js";

export const ConnState = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  DEGRADED: "degraded",
  RECONNECTING: "reconnecting",
  FAILED: "failed",
  STOPPED: "stopped",
});

export class ConnectionManager extends Emitter {
  /**
   * @param socket   a RealtimeSocket (connect/disconnect/heartbeat, "open"/"close" events)
   * @param policy   {baseMs, capMs, maxAttempts, heartbeatMs, heartbeatTimeoutMs, connectTimeoutMs, rtt:{degradedMs, poorMs}}
   */
  constructor({ socket, timers, random = Math.random, policy = {}, env = null }) {
    super();
    this.socket = socket;
    this.timers = timers;
    this.policy = {
      baseMs: 500,
      capMs: 15000,
      maxAttempts: 8,
      heartbeatMs: 15000,
      heartbeatTimeoutMs: 10000,
      connectTimeoutMs: 10000,
      ...policy,
    };
    this.backoff = new Backoff(this.policy, random);
    this.link = new LinkQuality({ thresholds: this.policy.rtt });
    this.state = ConnState.STOPPED;
    this.notice = null;
    this.lastDelayMs = null;
    this.delays = [];
    this._timer = null; // reconnect or connect-timeout timer
    this._heartbeatTimer = null;
    this._beat = 0;
    socket.on("open", () => this._opened());
    socket.on("close", (info) => {
      if (!info.requested) this._lost(`closed (${info.code})`);
    });
    if (env) {
      // Browser hints: coming back online or to the foreground retries at once.
      env.addEventListener?.("online", () => this._nudge());
      env.document?.addEventListener?.("visibilitychange", () => {
        if (env.document.visibilityState === "visible") this._nudge();
      });
    }
  }

  start() {
    if (this.state !== ConnState.STOPPED) return;
    this._connect(ConnState.CONNECTING);
  }

  /** The user's retry button (or a browser hint): forget past failures and connect now. */
  retry() {
    if (this.state === ConnState.STOPPED) return;
    this._clearTimer();
    this.backoff.reset();
    this._setNotice(null);
    this.socket.disconnect(1000, "manual retry");
    this._connect(ConnState.CONNECTING);
  }

  stop() {
    this._clearTimer();
    this._stopHeartbeat();
    this._set(ConnState.STOPPED);
    this.socket.disconnect(1000, "stopped");
  }

  get quality() {
    return this.link.quality;
  }

  get online() {
    return this.state === ConnState.CONNECTED || this.state === ConnState.DEGRADED;
  }

  _nudge() {
    if (this.state === ConnState.RECONNECTING || this.state === ConnState.FAILED) this.retry();
  }

  _connect(state) {
    this._set(state);
    this.socket.connect();
    this._timer = this.timers.setTimeout(() => {
      this._timer = null;
      // The socket never opened (a black-holed network): count it as a failed attempt.
      this.socket.disconnect(4000, "connect timeout");
      this._lost("connect timeout");
    }, this.policy.connectTimeoutMs);
  }

  _opened() {
    if (this.state === ConnState.STOPPED) return;
    this._clearTimer();
    this.backoff.reset();
    this.link.reset();
    this._setNotice(null);
    this._set(ConnState.CONNECTED);
    this._startHeartbeat();
    this.emit("restored");
  }

  _lost(reason) {
    if (this.state === ConnState.STOPPED || this.state === ConnState.FAILED) return;
    this._clearTimer();
    this._stopHeartbeat();
    if (this.backoff.exhausted()) {
      this._set(ConnState.FAILED);
      this._setNotice({
        message: "We can't reach the server. Chat and video will resume when the connection is back.",
        attempts: this.backoff.attempt,
        reason,
      });
      return;
    }
    const delay = this.backoff.next();
    this.lastDelayMs = delay;
    this.delays.push(delay);
    this._set(ConnState.RECONNECTING, { delayMs: delay, attempt: this.backoff.attempt, reason });
    this._timer = this.timers.setTimeout(() => {
      this._timer = null;
      this._connect(ConnState.RECONNECTING);
    }, delay);
  }

  _startHeartbeat() {
    this._stopHeartbeat();
    const beat = ++this._beat;
    const loop = async (first) => {
      if (beat !== this._beat) return;
      if (!first) {
        try {
          const rtt = await this.socket.heartbeat(this.policy.heartbeatTimeoutMs);
          if (beat !== this._beat) return;
          const quality = this.link.record(rtt);
          this.emit("rtt", rtt);
          this._set(quality === "good" ? ConnState.CONNECTED : ConnState.DEGRADED);
        } catch {
          if (beat !== this._beat) return;
          // Like realtime-js: an unanswered heartbeat means the link is dead; reconnect.
          this.link.record(null);
          this.socket.disconnect(4000, "heartbeat timeout");
          this._lost("heartbeat timeout");
          return;
        }
      }
      this._heartbeatTimer = this.timers.setTimeout(() => loop(false), first ? 0 : this.policy.heartbeatMs);
    };
    loop(true);
  }

  _stopHeartbeat() {
    this._beat += 1;
    if (this._heartbeatTimer !== null) this.timers.clearTimeout(this._heartbeatTimer);
    this._heartbeatTimer = null;
  }

  _clearTimer() {
    if (this._timer !== null) this.timers.clearTimeout(this._timer);
    this._timer = null;
  }

  _set(state, info = {}) {
    const previous = this.state;
    this.state = state;
    if (previous !== state) this.emit("state", state, { previous, quality: this.link.quality, ...info });
  }

  _setNotice(notice) {
    this.notice = notice;
    this.emit("notice", notice);
  }
}
