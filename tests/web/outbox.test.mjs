// The chat outbox: ordered, idempotent delivery that survives failures, reconnects and reloads.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Outbox } from "../../src/onair/web/static/client/outbox.js";
import { ApiError } from "../../src/onair/web/static/client/api.js";
import { FakeTimers } from "./support/fake_timers.mjs";

/** A chat endpoint that may fail before or AFTER storing (the reply lost on the way back). */
function flakyServer(outcomes) {
  const rows = [];
  let i = 0;
  return {
    rows,
    async sendChat(_stream, { body, client_msg_id }) {
      const outcome = outcomes[i++ % outcomes.length];
      if (outcome === "down") throw new ApiError(0, {});
      if (outcome === "busy") throw new ApiError(503, {});
      const existing = rows.find((r) => r.client_msg_id === client_msg_id);
      const row = existing ?? { seq: rows.length + 1, body, client_msg_id };
      if (!existing) rows.push(row);
      if (outcome === "lost-reply") throw new ApiError(0, {});
      return row;
    },
  };
}

test("any pattern of failures (including lost replies) stores every message exactly once, in order", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom("ok", "down", "busy", "lost-reply"), { minLength: 1, maxLength: 12 }).filter((o) => o.includes("ok")),
      fc.integer({ min: 1, max: 8 }),
      async (outcomes, n) => {
        const timers = new FakeTimers();
        const server = flakyServer(outcomes);
        let id = 0;
        const outbox = new Outbox({ api: server, streamId: "s1", timers, now: timers.now, random: () => 0.5, newId: () => `c${++id}` });
        for (let k = 0; k < n; k += 1) outbox.send(`m${k}`);
        await timers.advance(10 * 60 * 1000);
        assert.deepEqual(server.rows.map((r) => r.body), Array.from({ length: n }, (_, k) => `m${k}`));
        assert.equal(outbox.pending().length, 0);
      },
    ),
    { numRuns: 80 },
  );
});

test("a refusal (403 muted) fails that message with the server's reason and goes on with the next", async () => {
  const timers = new FakeTimers();
  const sent = [];
  const api = {
    async sendChat(_s, entry) {
      if (entry.body === "bad") throw new ApiError(403, { type: "chat-muted", detail: "muted until 12:00" });
      sent.push(entry.body);
      return { seq: sent.length, body: entry.body };
    },
  };
  const outbox = new Outbox({ api, streamId: "s1", timers, now: timers.now, newId: (() => { let i = 0; return () => `c${++i}`; })() });
  const failed = [];
  outbox.on("failed", (_e, err) => failed.push(err.type));
  outbox.send("a");
  outbox.send("bad");
  outbox.send("c");
  await timers.advance(100);
  assert.deepEqual(sent, ["a", "c"]);
  assert.deepEqual(failed, ["chat-muted"]);
  assert.equal(outbox.failed[0].error, "muted until 12:00");
});

test("queued messages survive a reload through storage and keep their client_msg_id", async () => {
  const timers = new FakeTimers();
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const down = { sendChat: async () => { throw new ApiError(0, {}); } };
  const first = new Outbox({ api: down, streamId: "s1", timers, now: timers.now, storage, newId: () => "fixed-id" });
  first.send("hello");
  await timers.advance(10);
  first.stop();
  const received = [];
  const up = { sendChat: async (_s, e) => (received.push(e.client_msg_id), { seq: 1, body: e.body }) };
  const second = new Outbox({ api: up, streamId: "s1", timers, now: timers.now, storage });
  assert.equal(second.pending().length, 1);
  await second.flush();
  assert.deepEqual(received, ["fixed-id"]);
  assert.equal(JSON.parse(store.get("onair.outbox.s1")).length, 0);
});

test("429 waits at least Retry-After", async () => {
  const timers = new FakeTimers();
  const times = [];
  let calls = 0;
  const api = {
    async sendChat() {
      times.push(timers.now());
      if (calls++ === 0) throw new ApiError(429, {}, 5000);
      return { seq: 1 };
    },
  };
  const outbox = new Outbox({ api, streamId: "s1", timers, now: timers.now, random: () => 0, newId: () => "x" });
  outbox.send("hi");
  await timers.advance(20000);
  assert.equal(times.length, 2);
  assert.ok(times[1] - times[0] >= 5000);
});
