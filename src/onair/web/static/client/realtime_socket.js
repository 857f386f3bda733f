// The WebSocket side of the Phoenix protocol: connect, heartbeats with round-trip time, refs,
// routing of decoded frames to channels (spec: supabase-realtime.md §1–§2).
//
// Reconnecting is NOT done here: the ConnectionManager owns that policy (backoff with full
// jitter, attempt limit, manual retry). This object only reports "open" and "close".

import { Channel } from "./channel.js";
import { decode, encode, ProtocolError, VSN_2 } from "./serializer.js";
import { Emitter, realClock, realTimers } from "./emitter.js";

export class RealtimeSocket extends Emitter {
  /**
   * @param options.url        base URL of the realtime endpoint, e.g. "ws://host/realtime/v1"
   * @param options.apikey     the anon key or a user JWT (query parameter `apikey`, §1.3)
   * @param options.vsn        "2.0.0" (default) or "1.0.0"
   * @param options.WebSocket  constructor (injected in tests)
   */
  constructor({ url, apikey, vsn = VSN_2, WebSocket = globalThis.WebSocket, timers = realTimers, now = realClock, pushTimeoutMs = 10000 }) {
    super();
    if (!apikey) throw new Error("API key is required to connect to Realtime");
    this.url = url;
    this.apikey = apikey;
    this.vsn = vsn;
    this.WebSocket = WebSocket;
    this.timers = timers;
    this.now = now;
    this.pushTimeoutMs = pushTimeoutMs;
    this.channels = new Map(); // topic -> Channel
    this._ref = 0;
    this._conn = null;
    this._heartbeats = new Map(); // ref -> {sentAt, resolve, reject, timer}
    this.protocolErrors = 0;
  }

  endpointUrl() {
    const base = this.url.replace(/^http/, "ws").replace(/\/$/, "");
    const query = new URLSearchParams({ apikey: this.apikey, vsn: this.vsn });
    return `${base}/websocket?${query}`;
  }

  makeRef() {
    this._ref += 1;
    return String(this._ref);
  }

  isOpen() {
    return this._conn !== null && this._conn.readyState === 1;
  }

  /** Open a new connection unless one is open or opening. */
  connect() {
    if (this._conn && (this._conn.readyState === 0 || this._conn.readyState === 1)) return;
    let conn;
    try {
      conn = new this.WebSocket(this.endpointUrl());
    } catch (err) {
      // e.g. a URL the browser refuses: report it like a failed connection, after this call returns
      this._conn = null;
      this.timers.setTimeout(() => this.emit("close", { code: 1006, requested: false, error: err }), 0);
      return;
    }
    conn.binaryType = "arraybuffer";
    this._conn = conn;
    conn.onopen = () => {
      if (conn !== this._conn) return;
      this.emit("open");
      for (const channel of this.channels.values()) channel.socketOpened();
    };
    conn.onmessage = (event) => {
      if (conn === this._conn) this._receive(event.data);
    };
    conn.onerror = () => {
      // Browsers follow every error with a close event; the close handler does the work.
    };
    conn.onclose = (event) => {
      if (conn !== this._conn) return;
      this._conn = null;
      this._lost(`socket closed: ${event?.code ?? 1006}`, { code: event?.code ?? 1006, requested: false });
    };
  }

  /** Close on our own initiative (no reconnect is implied; the manager decides). */
  disconnect(code = 1000, reason = "client disconnect") {
    const conn = this._conn;
    this._conn = null;
    if (conn) {
      conn.onopen = conn.onmessage = conn.onclose = conn.onerror = null;
      try {
        conn.close(code, reason);
      } catch {
        // already closing
      }
      this._lost(reason, { code, requested: true });
    }
  }

  /** Encode and send; false when not open (callers decide whether to queue). */
  send(message) {
    if (!this.isOpen()) return false;
    this._conn.send(encode(message, this.vsn));
    return true;
  }

  /** Send one heartbeat; resolves with the round-trip time in ms, rejects on timeout. */
  heartbeat(timeoutMs = this.pushTimeoutMs) {
    const ref = this.makeRef();
    const sentAt = this.now();
    return new Promise((resolve, reject) => {
      if (!this.isOpen()) {
        reject(new Error("not connected"));
        return;
      }
      // registered before sending: a reply may come back before send() returns
      const timer = this.timers.setTimeout(() => {
        this._heartbeats.delete(ref);
        reject(new Error("heartbeat timeout"));
      }, timeoutMs);
      this._heartbeats.set(ref, { sentAt, resolve, reject, timer });
      this.send({ join_ref: null, ref, topic: "phoenix", event: "heartbeat", payload: {} });
    });
  }

  /** The channel object for a sub-topic; one per topic, reused (§3.1). */
  channel(subTopic, options = {}) {
    const topic = `realtime:${subTopic}`;
    if (!this.channels.has(topic)) this.channels.set(topic, new Channel(this, subTopic, options));
    return this.channels.get(topic);
  }

  removeChannel(channel) {
    channel.unsubscribe();
    this.channels.delete(channel.topic);
  }

  _receive(frame) {
    let message;
    try {
      message = decode(frame, this.vsn);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.protocolErrors += 1; // a malformed frame is dropped; the connection stays usable
      return;
    }
    if (message.topic === "phoenix") {
      const pending = message.event === "phx_reply" ? this._heartbeats.get(message.ref) : undefined;
      if (pending) {
        this._heartbeats.delete(message.ref);
        this.timers.clearTimeout(pending.timer);
        pending.resolve(this.now() - pending.sentAt);
      }
      return;
    }
    this.emit("message", message);
    this.channels.get(message.topic)?.handle(message);
  }

  _lost(reason, info) {
    for (const [, pending] of this._heartbeats) {
      this.timers.clearTimeout(pending.timer);
      pending.reject(new Error(reason));
    }
    this._heartbeats.clear();
    for (const channel of this.channels.values()) channel.socketClosed(reason);
    this.emit("close", info);
  }
}
