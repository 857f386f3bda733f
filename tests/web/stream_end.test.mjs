// Issue 11 §5: when a stream ends the server closes its channel (`system` status "ok" "The stream
// has ended", then `phx_close`) after the final state. The page's channel must stay closed —
// no rejoin loop, whatever the timing — while error closes (token expiry) still rejoin, and the
// chat it shows stays.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ChatLog } from "../../src/onair/web/static/client/chat_log.js";
import { ChatSync } from "../../src/onair/web/static/client/chat_sync.js";
import { ConnectionManager } from "../../src/onair/web/static/client/connection_manager.js";
import { RealtimeSocket } from "../../src/onair/web/static/client/realtime_socket.js";
import { FakeTimers } from "./support/fake_timers.mjs";
import { FakeRealtimeServer } from "./support/fake_realtime_server.mjs";

const TOPIC = "realtime:stream:s1";

function setup() {
  const timers = new FakeTimers();
  const server = new FakeRealtimeServer(timers);
  const socket = new RealtimeSocket({ url: "ws://x/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
  const manager = new ConnectionManager({ socket, timers, random: () => 0.5, policy: { baseMs: 100 } });
  const log = new ChatLog();
  const sync = new ChatSync({ api: server.api(), streamId: "s1", log, timers });
  const channel = socket.channel("stream:s1", { private: true });
  const states = [];
  const system = [];
  channel.listen("system", {}, (payload) => system.push(payload));
  channel.on("state", (state, info) => states.push([state, info?.reason]));
  sync.bind(channel);
  const joins = () => server.frames.filter((f) => String(f).includes('"phx_join"')).length;
  return { timers, server, socket, manager, log, sync, channel, states, system, joins };
}

test("a stream's end closes the page's channel for good: no rejoin, chat kept", async () => {
  const t = setup();
  let finished = 0;
  t.channel.on("finished", () => (finished += 1));
  t.channel.subscribe();
  t.manager.start();
  await t.timers.advance(500);
  assert.equal(t.channel.state, "joined");
  t.server.insertChat("s1", "last words");
  t.server.broadcast(TOPIC, "stream_state", { stream: { id: "s1", status: "ended" } });
  t.server.endStream(TOPIC);
  await t.timers.advance(120_000); // two minutes: every rejoin schedule would have fired by now
  assert.equal(t.channel.state, "closed");
  assert.equal(t.joins(), 1);
  assert.equal(finished, 1);
  assert.equal(t.system.at(-1).message, "The stream has ended");
  assert.deepEqual(t.states.at(-1), ["closed", "The stream has ended"]);
  assert.deepEqual(t.log.messages().map((r) => r.body), ["last words"]);
  // the socket reconnecting later does not bring the channel back either
  t.server.cutOne();
  await t.timers.advance(30_000);
  assert.equal(t.joins(), 1);
  t.manager.stop();
  t.sync.stop();
});

test("a channel joined after the end is closed right away and not rejoined", async () => {
  const t = setup();
  t.server.endStream(TOPIC);
  t.channel.subscribe();
  t.manager.start();
  await t.timers.advance(60_000);
  assert.equal(t.channel.state, "closed");
  assert.equal(t.joins(), 1);
  t.manager.stop();
  t.sync.stop();
});

test("an error close (token expiry) still rejoins", async () => {
  const t = setup();
  t.channel.subscribe();
  t.manager.start();
  await t.timers.advance(500);
  t.server.channelFault("close");
  await t.timers.advance(5_000);
  assert.equal(t.channel.state, "joined");
  assert.equal(t.joins(), 2);
  t.manager.stop();
  t.sync.stop();
});

test("whatever comes before the end (socket cuts, error closes), the channel ends closed after one final join", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.constantFrom("cut", "close", "wait"), { maxLength: 6 }), async (faults) => {
      const t = setup();
      t.channel.subscribe();
      t.manager.start();
      await t.timers.advance(500);
      for (const fault of faults) {
        if (fault === "cut") t.server.cutOne();
        if (fault === "close") t.server.channelFault("close");
        await t.timers.advance(fault === "wait" ? 3_000 : 200);
      }
      await t.timers.advance(15_000);
      t.server.endStream(TOPIC);
      await t.timers.advance(100);
      const before = t.joins();
      await t.timers.advance(120_000);
      assert.equal(t.channel.state, "closed");
      assert.equal(t.joins(), before, "rejoined after the final close");
      t.manager.stop();
      t.sync.stop();
    }),
    { numRuns: 40 },
  );
});
