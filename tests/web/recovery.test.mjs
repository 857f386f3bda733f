// Property 10: connection recovery and state restoration — for any schedule of disconnects,
// server restarts, channel crashes and shutdowns, refused joins, stale replies, lost and
// duplicated live events and chat inserts, the client ends with the same
// channel subscriptions it wanted and exactly the chat sequence the server holds (no gap, no
// duplicate), and at every step the visible chat is a gap-free run of the server's rows.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ChatLog } from "../../src/onair/web/static/client/chat_log.js";
import { ChatSync } from "../../src/onair/web/static/client/chat_sync.js";
import { ConnectionManager, ConnState } from "../../src/onair/web/static/client/connection_manager.js";
import { RealtimeSocket } from "../../src/onair/web/static/client/realtime_socket.js";
import { Outbox } from "../../src/onair/web/static/client/outbox.js";
import { FakeTimers, cyclingRandom } from "./support/fake_timers.mjs";
import { FakeRealtimeServer } from "./support/fake_realtime_server.mjs";

const STREAMS = ["s1", "s2"];

const action = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("insert"), stream: fc.constantFrom(...STREAMS), count: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("send"), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("drop"), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("duplicate"), count: fc.integer({ min: 1, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("kill") }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("revive") }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cut") }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("silence"), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("fault"), fault: fc.constantFrom("error", "close", "stale-close") }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("failJoins"), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("wait"), ms: fc.integer({ min: 0, max: 5000 }) }) },
);

function visibleIsGapFreeServerRun(log, server, streamId) {
  const shown = log.messages();
  const rows = server.rows.get(streamId) ?? [];
  for (let i = 0; i < shown.length; i += 1) {
    if (i > 0) assert.equal(shown[i].seq, shown[i - 1].seq + 1, "gap or duplicate in the visible chat");
    const truth = rows[shown[i].seq - 1];
    assert.ok(truth, `seq ${shown[i].seq} does not exist on the server`);
    assert.equal(shown[i].body, truth.body);
    assert.equal(shown[i].stream_id, streamId, "a message of another stream");
  }
}

test("Property 10: connection recovery and state restoration", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(action, { minLength: 1, maxLength: 40 }),
      fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 1, maxLength: 8 }),
      fc.constantFrom("2.0.0", "1.0.0"),
      async (schedule, rs, vsn) => {
        const timers = new FakeTimers();
        const server = new FakeRealtimeServer(timers);
        const socket = new RealtimeSocket({ url: "ws://onair.test/realtime/v1", apikey: "anon", vsn, WebSocket: server.WebSocket, timers, now: timers.now });
        const manager = new ConnectionManager({
          socket,
          timers,
          random: cyclingRandom(rs),
          policy: { baseMs: 100, capMs: 3000, maxAttempts: 4, heartbeatMs: 2000, heartbeatTimeoutMs: 1500, connectTimeoutMs: 1500 },
        });
        const api = server.api();
        const logs = {};
        const syncs = {};
        const channels = {};
        for (const id of STREAMS) {
          logs[id] = new ChatLog();
          syncs[id] = new ChatSync({ api, streamId: id, log: logs[id], timers, pollMs: 700 });
          channels[id] = socket.channel(`stream:${id}`, { private: true });
          syncs[id].bind(channels[id]);
          channels[id].subscribe();
        }
        const outbox = new Outbox({ api, streamId: "s1", timers, now: timers.now, random: cyclingRandom(rs), newId: (() => { let n = 0; return () => `c${++n}`; })() });
        outbox.on("delivered", (_entry, row) => logs.s1.applyRows([row]));
        manager.on("state", () => {
          for (const id of STREAMS) syncs[id].setRealtimeAvailable(manager.online);
        });
        manager.on("restored", () => outbox.flush());
        manager.start();
        let sent = 0;

        for (const step of schedule) {
          switch (step.kind) {
            case "insert":
              for (let i = 0; i < step.count; i += 1) server.insertChat(step.stream, `${step.stream}-${(server.rows.get(step.stream)?.length ?? 0) + 1}`);
              break;
            case "send":
              for (let i = 0; i < step.count; i += 1) outbox.send(`mine-${++sent}`);
              break;
            case "drop":
              server.dropLive += step.count;
              break;
            case "duplicate":
              server.duplicateLive += step.count;
              break;
            case "kill":
              server.kill();
              break;
            case "revive":
              server.revive();
              break;
            case "cut":
              server.cutOne();
              break;
            case "silence":
              server.answerHeartbeats = !step.on;
              break;
            case "fault": {
              const before = STREAMS.map((id) => [channels[id].state, channels[id].joinRef]);
              server.channelFault(step.fault);
              if (step.fault === "stale-close") {
                // a message for an earlier join must not touch the current one (spec §2.4)
                assert.deepEqual(STREAMS.map((id) => [channels[id].state, channels[id].joinRef]), before);
              }
              break;
            }
            case "failJoins":
              server.failJoins += step.count;
              break;
            case "wait":
              await timers.advance(step.ms);
              break;
          }
          for (const id of STREAMS) visibleIsGapFreeServerRun(logs[id], server, id);
        }

        // The network comes back; a user facing the "can't reach the server" notice presses retry.
        server.revive();
        server.answerHeartbeats = true;
        server.dropLive = 0;
        server.failJoins = 0;
        await timers.advance(5000);
        if (manager.state === ConnState.FAILED) manager.retry();
        await timers.advance(30000);

        assert.ok(manager.online, `manager ${manager.state}`);
        assert.equal(server.connections.size, 1, "exactly one live connection");
        for (const id of STREAMS) {
          assert.equal(channels[id].state, "joined");
          assert.equal(server.subscriptions(`realtime:stream:${id}`), 1, `subscribed once to ${id}`);
          const expected = (server.rows.get(id) ?? []).map((r) => [r.seq, r.body]);
          assert.deepEqual(logs[id].messages().map((r) => [r.seq, r.body]), expected);
          assert.equal(logs[id].hasGap(), false);
        }
        // every message the user wrote is stored exactly once, in the order written
        assert.equal(outbox.pending().length, 0);
        const mine = (server.rows.get("s1") ?? []).filter((r) => r.body.startsWith("mine-")).map((r) => r.body);
        assert.deepEqual(mine, Array.from({ length: sent }, (_, i) => `mine-${i + 1}`));
        manager.stop();
      },
    ),
    { numRuns: 120 },
  );
});

test("resync after a reconnect asks only for what is missing (after_seq = last contiguous seq)", async () => {
  const timers = new FakeTimers();
  const server = new FakeRealtimeServer(timers);
  const socket = new RealtimeSocket({ url: "ws://x/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
  const manager = new ConnectionManager({ socket, timers, random: () => 0.5, policy: { baseMs: 100 } });
  const calls = [];
  const base = server.api();
  const api = { ...base, chatPage: (id, q) => (calls.push(q), base.chatPage(id, q)) };
  const log = new ChatLog();
  const sync = new ChatSync({ api, streamId: "s1", log, timers });
  const channel = socket.channel("stream:s1");
  sync.bind(channel);
  channel.subscribe();
  for (let i = 0; i < 3; i += 1) server.insertChat("s1", `m${i + 1}`);
  manager.start();
  await timers.advance(1000);
  assert.deepEqual(log.messages().map((r) => r.seq), [1, 2, 3]);
  server.kill();
  server.insertChat("s1", "while away 4");
  server.insertChat("s1", "while away 5");
  server.revive();
  calls.length = 0;
  await timers.advance(5000);
  assert.deepEqual(log.messages().map((r) => r.body), ["m1", "m2", "m3", "while away 4", "while away 5"]);
  assert.equal(calls[0].after_seq, 3);
  manager.stop();
});

test("partial connectivity: with WebSockets blocked but REST up, chat still flows both ways (polling + outbox)", async () => {
  const timers = new FakeTimers();
  const server = new FakeRealtimeServer(timers);
  server.refuseSockets = true;
  const socket = new RealtimeSocket({ url: "ws://x/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
  const manager = new ConnectionManager({ socket, timers, random: () => 0.5, policy: { baseMs: 200, capMs: 2000, maxAttempts: 3 } });
  const api = server.api();
  const log = new ChatLog();
  const sync = new ChatSync({ api, streamId: "s1", log, timers, pollMs: 1000 });
  const channel = socket.channel("stream:s1");
  sync.bind(channel);
  channel.subscribe();
  const outbox = new Outbox({ api, streamId: "s1", timers, now: timers.now, newId: (() => { let n = 0; return () => `c${++n}`; })() });
  outbox.on("delivered", (_e, row) => log.applyRows([row]));
  manager.on("state", () => sync.setRealtimeAvailable(manager.online));
  sync.setRealtimeAvailable(false);
  manager.start();
  server.insertChat("s1", "from someone else");
  outbox.send("mine");
  await timers.advance(4000);
  assert.notEqual(manager.online, true);
  assert.deepEqual(log.messages().map((r) => r.body), ["from someone else", "mine"]);
  server.insertChat("s1", "later");
  await timers.advance(1500);
  assert.deepEqual(log.messages().map((r) => r.body), ["from someone else", "mine", "later"]);
  manager.stop();
  sync.stop();
});
