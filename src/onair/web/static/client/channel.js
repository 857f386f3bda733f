// One Supabase Realtime channel (spec: supabase-realtime.md §3–§5, §7.2).
//
// States follow Phoenix: closed → joining → joined; a socket loss or phx_error makes it errored,
// and an errored channel that is still wanted rejoins (on socket open, or after the Phoenix
// schedule 1 s, 2 s, 5 s, 10 s when the join itself failed). Every rejoin uses a new join_ref,
// and messages carrying an older join_ref are dropped (§2.4).

import { convertRecord } from "./change_values.js";
import { Emitter } from "./emitter.js";
import { isLookAlike } from "./event_names.js";

export const REJOIN_DELAYS_MS = [1000, 2000, 5000, 10000];

// `system` messages (extension "system") a server node sends to every channel when its broker
// link drops ("error") and comes back ("ok"): live events were missed meanwhile, so whatever the
// page shows from them must be re-read. They are not followed by phx_close: the channel stays.
// The texts are the server's (onair/realtime/node.py).
export const LIVE_DELIVERY_LOST = "Live delivery interrupted: messages may be missed until it is restored";
export const LIVE_DELIVERY_RESTORED = "Live delivery restored: resync what was missed";

/** {live: false|true} when `payload` is one of those notices, else null. */
export function deliveryNotice(payload) {
  if (payload?.extension !== "system") return null;
  if (payload.status === "error" && payload.message === LIVE_DELIVERY_LOST) return { live: false };
  if (payload.status === "ok" && payload.message === LIVE_DELIVERY_RESTORED) return { live: true };
  return null;
}

export const ChannelState = Object.freeze({
  CLOSED: "closed",
  JOINING: "joining",
  JOINED: "joined",
  ERRORED: "errored",
  LEAVING: "leaving",
});

export class Channel extends Emitter {
  /**
   * @param socket      a RealtimeSocket
   * @param subTopic    e.g. "stream:0192..." (the wire topic is "realtime:" + subTopic)
   * @param options     {broadcast:{self,ack}, presence:{key}, private, accessToken}
   */
  constructor(socket, subTopic, options = {}) {
    super();
    this.socket = socket;
    this.subTopic = subTopic;
    this.topic = `realtime:${subTopic}`;
    this.options = options;
    this.accessToken = options.accessToken ?? null;
    this.state = ChannelState.CLOSED;
    this.wanted = false;
    this.joinRef = null;
    this.joinCount = 0;
    this.rejoinAttempt = 0;
    this._rejoinTimer = null;
    this._pending = new Map(); // ref -> {resolve, reject, timer}
    this._bindings = []; // {type, filter, callback, id?}
    this.presence = new Map(); // key -> [meta]
    this.lastError = null;
    this._lastSystem = null; // the last `system` payload of this join (read by phx_close)
  }

  /** Listen for "broadcast" ({event}), "postgres_changes" ({event, schema, table, filter}),
   * "presence" ({event: "sync"|"join"|"leave"}) or "system" ({}). Must precede subscribe(). */
  listen(type, filter, callback) {
    this._bindings.push({ type, filter: { ...filter }, callback, id: null });
    return this;
  }

  /** Join now (if the socket is open) and keep rejoining after losses until unsubscribe(). */
  subscribe() {
    this.wanted = true;
    if (this.socket.isOpen() && this.state !== ChannelState.JOINED && this.state !== ChannelState.JOINING) {
      this._join();
    }
    return this;
  }

  unsubscribe() {
    this.wanted = false;
    this._clearRejoin();
    if (this.state === ChannelState.JOINED || this.state === ChannelState.JOINING) {
      this._setState(ChannelState.LEAVING);
      this.socket.send({ join_ref: this.joinRef, ref: this.socket.makeRef(), topic: this.topic, event: "phx_leave", payload: {} });
    }
    this._setState(ChannelState.CLOSED);
    this._failPending("left");
  }

  /** Send a broadcast; resolves "ok" at once unless the channel was joined with ack. */
  send(event, payload) {
    if (this.state !== ChannelState.JOINED) return Promise.resolve("not-joined");
    const ack = Boolean(this.options.broadcast?.ack);
    const message = { type: "broadcast", event, payload };
    if (!ack) {
      this.socket.send(this._message("broadcast", message, this.socket.makeRef()));
      return Promise.resolve("ok");
    }
    return this._push("broadcast", message).then(
      () => "ok",
      (reason) => reason,
    );
  }

  track(meta) {
    return this._push("presence", { type: "presence", event: "track", payload: meta });
  }

  /** Store a new JWT for later joins and tell the server now if joined (§7.2). */
  setAccessToken(token) {
    if (token === this.accessToken) return;
    this.accessToken = token;
    if (this.state === ChannelState.JOINED) {
      this.socket.send(this._message("access_token", { access_token: token }, this.socket.makeRef()));
    }
  }

  /** Called by the socket when it opened: errored channels that are wanted rejoin at once. */
  socketOpened() {
    if (this.wanted && this.state !== ChannelState.JOINED && this.state !== ChannelState.JOINING) {
      this._clearRejoin();
      this._join();
    }
  }

  /** Called by the socket when it closed: everything in flight is lost (§1.6). */
  socketClosed(reason) {
    this._clearRejoin();
    this._failPending(reason);
    if (this.state === ChannelState.JOINED || this.state === ChannelState.JOINING) {
      this._setState(ChannelState.ERRORED, reason);
    }
  }

  /** Route one decoded server message addressed to this topic. */
  handle(message) {
    if (message.join_ref !== null && message.join_ref !== undefined && message.join_ref !== this.joinRef) {
      return; // outdated: belongs to an earlier join of this topic
    }
    const { event, payload } = message;
    switch (event) {
      case "phx_reply": {
        const pending = this._pending.get(message.ref);
        if (!pending) return;
        this._pending.delete(message.ref);
        this.socket.timers.clearTimeout(pending.timer);
        if (payload?.status === "ok") pending.resolve(payload.response ?? {});
        else pending.reject(describeError(payload?.response));
        return;
      }
      case "phx_close": {
        // A `system` message with status "ok" before the close is a normal, final end (the
        // stream ended): rejoining would only be closed again, so the channel stays closed and
        // says so ("finished"). Error closes (token expiry, limits) rejoin as before.
        const notice = this._lastSystem;
        const final = notice?.extension === "system" && notice?.status === "ok";
        this._failPending("closed");
        if (final) {
          this.wanted = false;
          this._clearRejoin();
        }
        this._setState(ChannelState.CLOSED, final ? (notice.message ?? "closed by server") : (this.lastError ?? "closed by server"));
        if (final) this.emit("finished", notice);
        if (this.wanted) this._scheduleRejoin();
        return;
      }
      case "phx_error":
        this._failPending("channel error");
        this._setState(ChannelState.ERRORED, "channel error");
        if (this.wanted) this._scheduleRejoin();
        return;
      case "system": {
        const notice = deliveryNotice(payload);
        if (!notice) this._lastSystem = payload;
        if (payload?.status === "error" && !notice) this.lastError = payload.message ?? "system error";
        this._dispatch("system", () => true, payload);
        // "delivery" {live}: live events were lost (live false) / flow again (live true): resync
        if (notice && this.state === ChannelState.JOINED) this.emit("delivery", notice);
        return;
      }
      case "broadcast":
        // listeners match names case-insensitively, as realtime-js does: a look-alike of a
        // server or host event (STREAM_STATE, ſtream_state) must not reach the real one's listener
        if (isLookAlike(payload?.event)) return;
        this._dispatch(
          "broadcast",
          (f) => !f.event || f.event === "*" || String(f.event).toLowerCase() === String(payload?.event).toLowerCase(),
          payload,
        );
        return;
      case "postgres_changes":
        this._dispatchChange(payload);
        return;
      case "presence_state":
        this._presenceState(payload);
        return;
      case "presence_diff":
        this._presenceDiff(payload);
        return;
      default:
        return;
    }
  }

  _join() {
    this.joinRef = this.socket.makeRef();
    this.joinCount += 1;
    this.lastError = null;
    this._lastSystem = null;
    this._setState(ChannelState.JOINING);
    const bindings = this._bindings.filter((b) => b.type === "postgres_changes");
    const config = {
      broadcast: { ack: false, self: false, ...(this.options.broadcast ?? {}) },
      presence: {
        key: this.options.presence?.key ?? "",
        enabled: this._bindings.some((b) => b.type === "presence"),
      },
      postgres_changes: bindings.map((b) => b.filter),
      private: Boolean(this.options.private),
    };
    const payload = { config };
    if (this.accessToken) payload.access_token = this.accessToken;
    const joinRef = this.joinRef;
    this._push("phx_join", payload, joinRef).then(
      (response) => {
        // CLOSED: a close that came right behind the reply was handled before this callback ran
        if (joinRef !== this.joinRef || this.state === ChannelState.CLOSED) return;
        const echoed = response.postgres_changes;
        if (echoed !== undefined && !bindingsMatch(bindings, echoed)) {
          this.wanted = false;
          this._setState(ChannelState.ERRORED, "mismatch between server and client bindings for postgres changes");
          return;
        }
        bindings.forEach((b, i) => {
          b.id = echoed?.[i]?.id ?? null;
        });
        this.rejoinAttempt = 0;
        this._setState(ChannelState.JOINED);
      },
      (reason) => {
        if (joinRef !== this.joinRef || this.state === ChannelState.CLOSED) return;
        this.lastError = reason;
        this._setState(ChannelState.ERRORED, reason);
        if (this.wanted) this._scheduleRejoin();
      },
    );
  }

  _scheduleRejoin() {
    this._clearRejoin();
    const delay = REJOIN_DELAYS_MS[Math.min(this.rejoinAttempt, REJOIN_DELAYS_MS.length - 1)];
    this.rejoinAttempt += 1;
    this._rejoinTimer = this.socket.timers.setTimeout(async () => {
      this._rejoinTimer = null;
      if (!this.wanted || !this.socket.isOpen()) return;
      if (this.options.beforeRejoin) {
        try {
          await this.options.beforeRejoin(this);
        } catch {
          // a failed token refresh still rejoins: the server's error tells the user what is wrong
        }
      }
      if (this.wanted && this.socket.isOpen() && this.state !== ChannelState.JOINED && this.state !== ChannelState.JOINING) {
        this._join();
      }
    }, delay);
  }

  _clearRejoin() {
    if (this._rejoinTimer !== null) this.socket.timers.clearTimeout(this._rejoinTimer);
    this._rejoinTimer = null;
  }

  _message(event, payload, ref, joinRef = this.joinRef) {
    return { join_ref: joinRef, ref, topic: this.topic, event, payload };
  }

  _push(event, payload, ref = this.socket.makeRef()) {
    return new Promise((resolve, reject) => {
      if (!this.socket.isOpen()) {
        reject("not connected");
        return;
      }
      // registered before sending: a reply may come back before send() returns
      const timer = this.socket.timers.setTimeout(() => {
        this._pending.delete(ref);
        reject("timed out");
      }, this.socket.pushTimeoutMs);
      this._pending.set(ref, { resolve, reject, timer });
      this.socket.send(this._message(event, payload, ref));
    });
  }

  _failPending(reason) {
    for (const [, pending] of this._pending) {
      this.socket.timers.clearTimeout(pending.timer);
      pending.reject(reason);
    }
    this._pending.clear();
  }

  _setState(state, reason) {
    const previous = this.state;
    this.state = state;
    if (previous !== state || state === ChannelState.JOINED) this.emit("state", state, { previous, reason, joinCount: this.joinCount });
  }

  _dispatch(type, matches, payload) {
    for (const binding of this._bindings) {
      if (binding.type === type && matches(binding.filter)) binding.callback(payload);
    }
  }

  _dispatchChange(payload) {
    const ids = payload?.ids ?? [];
    const data = payload?.data ?? {};
    for (const binding of this._bindings) {
      if (binding.type !== "postgres_changes" || !ids.includes(binding.id)) continue;
      const event = String(binding.filter.event ?? "*").toUpperCase();
      if (event !== "*" && event !== String(data.type).toUpperCase()) continue;
      binding.callback({
        schema: data.schema,
        table: data.table,
        commit_timestamp: data.commit_timestamp,
        eventType: data.type,
        new: convertRecord(data.columns, data.record),
        old: convertRecord(data.columns, data.old_record),
        errors: data.errors ?? null,
      });
    }
  }

  _presenceState(state) {
    this.presence = new Map();
    for (const [key, { metas = [] } = {}] of Object.entries(state ?? {})) this.presence.set(key, metas);
    this._dispatch("presence", (f) => !f.event || f.event === "sync", { event: "sync" });
  }

  _presenceDiff({ joins = {}, leaves = {} } = {}) {
    for (const [key, { metas = [] }] of Object.entries(leaves)) {
      const gone = new Set(metas.map((m) => m.phx_ref));
      const left = (this.presence.get(key) ?? []).filter((m) => !gone.has(m.phx_ref));
      if (left.length) this.presence.set(key, left);
      else this.presence.delete(key);
    }
    for (const [key, { metas = [] }] of Object.entries(joins)) {
      const fresh = new Set(metas.map((m) => m.phx_ref));
      const kept = (this.presence.get(key) ?? []).filter((m) => !fresh.has(m.phx_ref));
      this.presence.set(key, [...kept, ...metas]);
    }
    this._dispatch("presence", (f) => !f.event || f.event === "sync", { event: "sync" });
  }
}

function describeError(response) {
  if (response && typeof response === "object") return Object.values(response).join(", ") || "error";
  return String(response ?? "error");
}

function bindingsMatch(bindings, echoed) {
  if (!Array.isArray(echoed) || echoed.length !== bindings.length) return false;
  return bindings.every((b, i) =>
    ["event", "schema", "table", "filter"].every((k) => (b.filter[k] ?? null) === (echoed[i]?.[k] ?? null)),
  );
}
