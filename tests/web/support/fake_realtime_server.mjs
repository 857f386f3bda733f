// An in-memory Supabase-Realtime server for the client tests: speaks vsn 2.0.0 and 1.0.0 over a
// fake WebSocket, answers heartbeats and joins (echoing postgres_changes bindings with ids),
// fans out broadcasts, delivers chat INSERTs as postgres_changes, and serves the chat REST
// endpoints the ChatSync uses. Tests can take it down, drop or duplicate live events, and cut
// single connections.

import { ApiError } from "../../../src/onair/web/static/client/api.js";
import { decode, encode } from "../../../src/onair/web/static/client/serializer.js";

export class FakeRealtimeServer {
  constructor(timers, { latencyMs = 5 } = {}) {
    this.timers = timers;
    this.latencyMs = latencyMs;
    this.up = true;
    this.connections = new Set();
    this.connectAttempts = 0;
    this.rows = new Map(); // streamId -> [row]
    this.dropLive = 0; // live events to lose
    this.duplicateLive = 0; // live events to deliver twice
    this.answerHeartbeats = true;
    this.failJoins = 0; // joins to refuse with an error reply
    this.refuseSockets = false; // WebSockets blocked (e.g. a proxy), REST still fine
    this.heartbeatDelayMs = 0;
    this.frames = [];
    const server = this;
    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.sent = [];
        const vsn = new URL(url).searchParams.get("vsn") ?? "1.0.0";
        this.vsn = vsn;
        this.topics = new Map(); // topic -> {joinRef, bindings}
        server.connectAttempts += 1;
        timers.setTimeout(() => {
          if (this.readyState !== 0) return;
          if (!server.up || server.refuseSockets) return this._closed(1006);
          this.readyState = 1;
          server.connections.add(this);
          this.onopen?.({});
        }, server.latencyMs);
      }
      send(frame) {
        if (this.readyState !== 1) throw new Error("send on a socket that is not open");
        server.frames.push(frame);
        server._receive(this, decode(frame, this.vsn));
      }
      close(code = 1000) {
        if (this.readyState >= 2) return;
        server.connections.delete(this);
        this.readyState = 3;
      }
      _push(message) {
        if (this.readyState !== 1) return;
        const frame = encode(message, this.vsn);
        this.onmessage?.({ data: frame });
      }
      _closed(code) {
        server.connections.delete(this);
        this.readyState = 3;
        this.onclose?.({ code, reason: "" });
      }
    };
  }

  // --- test controls ---
  kill() {
    this.up = false;
    for (const conn of [...this.connections]) conn._closed(1006);
  }
  revive() {
    this.up = true;
  }
  cutOne() {
    const conn = [...this.connections][0];
    if (conn) conn._closed(1006);
  }
  /** The channel process crashes (phx_error) or shuts down (system error + phx_close) on every
   * connection; a stale phx_close carries a join_ref no client uses any more. */
  channelFault(kind) {
    for (const conn of this.connections) {
      for (const [topic, sub] of [...conn.topics]) {
        if (kind === "stale-close") {
          conn._push({ join_ref: "stale-0", ref: "stale-0", topic, event: "phx_close", payload: {} });
          continue;
        }
        conn.topics.delete(topic);
        if (kind === "error") conn._push({ join_ref: sub.joinRef, ref: sub.joinRef, topic, event: "phx_error", payload: {} });
        if (kind === "close") {
          conn._push({ join_ref: sub.joinRef, ref: null, topic, event: "system", payload: { extension: "system", status: "error", message: "Token has expired 0 seconds ago", channel: topic.slice(9) } });
          conn._push({ join_ref: sub.joinRef, ref: sub.joinRef, topic, event: "phx_close", payload: {} });
        }
      }
    }
  }
  /** The stream behind `topic` ended: members get the final close (system "ok" + phx_close),
   * and so does every later join of it, right after its ok reply (as onair's sweep does). */
  endStream(topic) {
    this.ended = this.ended ?? new Set();
    this.ended.add(topic);
    for (const conn of this.connections) {
      const sub = conn.topics.get(topic);
      if (sub) this._finalClose(conn, topic, sub.joinRef);
    }
  }
  _finalClose(conn, topic, joinRef) {
    conn.topics.delete(topic);
    conn._push({ join_ref: joinRef, ref: null, topic, event: "system", payload: { extension: "system", status: "ok", message: "The stream has ended", channel: topic.slice(9) } });
    conn._push({ join_ref: joinRef, ref: joinRef, topic, event: "phx_close", payload: {} });
  }
  subscriptions(topic) {
    return [...this.connections].filter((c) => c.topics.has(topic)).length;
  }

  insertChat(streamId, body, sender = "u1") {
    const list = this.rows.get(streamId) ?? [];
    this.rows.set(streamId, list);
    const row = { id: `m${list.length + 1}`, stream_id: streamId, seq: list.length + 1, sender_id: sender, body, client_msg_id: null, deleted_at: null, edited_at: null };
    list.push(row);
    this._live(streamId, "INSERT", row);
    return row;
  }

  broadcast(topic, event, payload) {
    for (const conn of this.connections) {
      if (conn.topics.has(topic)) conn._push({ join_ref: null, ref: null, topic, event: "broadcast", payload: { type: "broadcast", event, payload } });
    }
  }

  _live(streamId, type, row) {
    if (this.dropLive > 0) {
      this.dropLive -= 1;
      return;
    }
    const times = this.duplicateLive > 0 ? 2 : 1;
    if (this.duplicateLive > 0) this.duplicateLive -= 1;
    const topic = `realtime:stream:${streamId}`;
    for (const conn of this.connections) {
      const sub = conn.topics.get(topic);
      if (!sub) continue;
      const ids = sub.bindings.filter((b) => b.table === "chat_messages" && b.filter === `stream_id=eq.${streamId}`).map((b) => b.id);
      if (!ids.length) continue;
      for (let i = 0; i < times; i += 1) {
        conn._push({ join_ref: null, ref: null, topic, event: "postgres_changes", payload: { ids, data: { schema: "public", table: "chat_messages", type, commit_timestamp: new Date(this.timers.now()).toISOString(), columns: [], record: row, old_record: null, errors: null } } });
      }
    }
  }

  _receive(conn, msg) {
    const reply = (status, response = {}) =>
      conn._push({ join_ref: msg.join_ref, ref: msg.ref, topic: msg.topic, event: "phx_reply", payload: { status, response } });
    if (msg.topic === "phoenix" && msg.event === "heartbeat") {
      if (!this.answerHeartbeats) return;
      if (this.heartbeatDelayMs) this.timers.setTimeout(() => reply("ok"), this.heartbeatDelayMs);
      else reply("ok");
      return;
    }
    switch (msg.event) {
      case "phx_join": {
        if (this.failJoins > 0) {
          this.failJoins -= 1;
          reply("error", { reason: "ClientJoinRateLimitReached: Too many joins per second" });
          return;
        }
        const bindings = (msg.payload?.config?.postgres_changes ?? []).map((b, i) => ({ ...b, id: 1000 + i }));
        conn.topics.set(msg.topic, { joinRef: msg.join_ref, bindings, accessToken: msg.payload?.access_token ?? null });
        reply("ok", { postgres_changes: bindings });
        if (this.ended?.has(msg.topic)) this._finalClose(conn, msg.topic, msg.join_ref);
        return;
      }
      case "phx_leave":
        conn.topics.delete(msg.topic);
        reply("ok");
        conn._push({ join_ref: msg.join_ref, ref: msg.join_ref, topic: msg.topic, event: "phx_close", payload: {} });
        return;
      case "access_token": {
        const sub = conn.topics.get(msg.topic);
        if (sub) sub.accessToken = msg.payload?.access_token;
        return;
      }
      case "broadcast":
        for (const other of this.connections) {
          if (other !== conn && other.topics.has(msg.topic)) {
            other._push({ join_ref: null, ref: null, topic: msg.topic, event: "broadcast", payload: msg.payload });
          }
        }
        return;
      default:
        if (!conn.topics.has(msg.topic)) reply("error", { reason: "unmatched topic" });
    }
  }

  // --- the chat REST endpoints (shape of issue 4) ---
  api() {
    const server = this;
    const guard = async () => {
      await new Promise((r) => server.timers.setTimeout(r, server.latencyMs));
      if (!server.up) throw new ApiError(0, { title: "network error" });
    };
    return {
      async chatPage(streamId, { limit = 50, before_seq, after_seq } = {}) {
        await guard();
        const all = server.rows.get(streamId) ?? [];
        let items;
        if (after_seq !== undefined) items = all.filter((r) => r.seq > after_seq).slice(0, limit);
        else {
          const below = before_seq === undefined ? all : all.filter((r) => r.seq < before_seq);
          items = below.slice(-limit).reverse();
        }
        return { items: items.map((r) => ({ ...r })), nextCursor: items.length === limit ? items[items.length - 1].seq : null };
      },
      async sendChat(streamId, { body, client_msg_id }) {
        await guard();
        const all = server.rows.get(streamId) ?? [];
        const existing = all.find((r) => r.client_msg_id === client_msg_id);
        if (existing) return { ...existing };
        const row = server.insertChat(streamId, body);
        row.client_msg_id = client_msg_id;
        return { ...row };
      },
    };
  }
}
