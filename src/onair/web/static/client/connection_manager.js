// The realtime connection's life, as the user sees it:
//
//   connecting ──open──▶ connected ◀──rtt good──▶ degraded
//        ▲                   │ lost (close / heartbeat timeout)
//        │                   ▼
//     retry() ◀── failed ◀── reconnecting ──(delay with full jitter)──▶ connect again
//                 (after maxAttempts failed retries: one try every slowRetryMs, for ever)
//
//   offline: the browser says the network is gone ("offline" event, navigator.onLine): the
//   socket is dropped at once rather than after a heartbeat timeout; "online" retries at once.
//
// From the first failure on, `notice` says what is wrong, when the next try is (`retryAt`, for a
// countdown) and the page offers "Retry now". A failed REST call is a hint too: `suspect()` sends
// a heartbeat with a short deadline and treats silence as a lost link.
//
// After every open, the socket rejoins every wanted channel (each channel's "joined" event then
// triggers the chat resync), the heartbeat loop restarts and `restored` is emitted so owners can
// flush outboxes. The policy numbers come from the server's settings (the page's config).

import { Backoff } from "./backoff.js";
import { Emitter, realClock } from "./emitter.js";
import { LinkQuality } from "./link_quality.js";

export const ConnState = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  DEGRADED: "degraded",
  RECONNECTING: "reconnecting",
  FAILED: "failed",
  OFFLINE: "offline",
  STOPPED: "stopped",
});

const OFFLINE_MESSAGE = "You're offline. Chat and video resume when the network is back.";

export class ConnectionManager extends Emitter {
  /**
   * @param socket   a RealtimeSocket (connect/disconnect/heartbeat, "open"/"close" events)
   * @param policy   {baseMs, capMs, maxAttempts, slowRetryMs, probeTimeoutMs, heartbeatMs,
   *                 heartbeatTimeoutMs, connectTimeoutMs, rtt:{degradedMs, poorMs}}
   * @param env      the browser (online/offline events, navigator.onLine, visibilitychange)
   */
  constructor({ socket, timers, random = Math.random, policy = {}, env = null, now = realClock }) {
    super();
    this.socket = socket;
    this.timers = timers;
    this.now = now;
    this.env = env;
    this.policy = {
      baseMs: 500,
      capMs: 15000,
      maxAttempts: 8,
      slowRetryMs: 30000,
      probeTimeoutMs: 1500,
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
    this._probing = false;
    socket.on("open", () => this._opened());
    socket.on("close", (info) => {
      if (!info.requested) this._lost(`closed (${info.code})`);
    });
    if (env) {
      // Browser hints: coming back online or to the foreground retries at once.
      env.addEventListener?.("online", () => this._nudge());
      env.addEventListener?.("offline", () => this._goOffline());
      env.document?.addEventListener?.("visibilitychange", () => {
        if (env.document.visibilityState === "visible") this._nudge();
      });
    }
  }

  start() {
    if (this.state !== ConnState.STOPPED) return;
    if (this.env?.navigator?.onLine === false) {
      this._enterOffline();
      return;
    }
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

  /** Something else failed to reach the server (a REST call): check the link now, not at the
   *  next heartbeat, so the page says so within probeTimeoutMs. */
  suspect() {
    if (!this.online || this._probing) return;
    this._probing = true;
    const beat = this._beat;
    this.socket.heartbeat(this.policy.probeTimeoutMs).then(
      (rtt) => {
        this._probing = false;
        if (beat === this._beat) this.emit("rtt", rtt);
      },
      () => {
        this._probing = false;
        if (beat !== this._beat || !this.online) return;
        this.link.record(null);
        this._stopHeartbeat();
        this.socket.disconnect(4000, "probe timeout");
        this._lost("no answer from the server");
      },
    );
  }

  _nudge() {
    if ([ConnState.RECONNECTING, ConnState.FAILED, ConnState.OFFLINE].includes(this.state)) this.retry();
  }

  _goOffline() {
    if (this.state !== ConnState.STOPPED && this.state !== ConnState.OFFLINE) this._enterOffline();
  }

  _enterOffline() {
    this._clearTimer();
    this._stopHeartbeat();
    this.socket.disconnect(4000, "offline");
    this._set(ConnState.OFFLINE);
    // the "online" event retries at once; the slow retry covers a browser that never sends it
    this._scheduleSlowRetry({ message: OFFLINE_MESSAGE, reason: "offline" });
  }

  _scheduleSlowRetry(notice) {
    const retryAt = this.now() + this.policy.slowRetryMs;
    this._setNotice({ attempts: this.backoff.attempt, retryAt, ...notice });
    this._timer = this.timers.setTimeout(() => {
      this._timer = null;
      this._connect(this.state);
    }, this.policy.slowRetryMs);
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
    if (this.state === ConnState.STOPPED) return;
    this._clearTimer();
    this._stopHeartbeat();
    if (this.state === ConnState.OFFLINE) {
      this._scheduleSlowRetry({ message: OFFLINE_MESSAGE, reason });
      return;
    }
    if (this.state === ConnState.FAILED || this.backoff.exhausted()) {
      this._set(ConnState.FAILED);
      this._scheduleSlowRetry({ message: "We can't reach the server.", reason, final: true });
      return;
    }
    const delay = this.backoff.next();
    this.lastDelayMs = delay;
    this.delays.push(delay);
    this._set(ConnState.RECONNECTING, { delayMs: delay, attempt: this.backoff.attempt, reason });
    this._setNotice({ message: "Connection lost. Reconnecting…", attempts: this.backoff.attempt, reason, retryAt: this.now() + delay });
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
