// When a server node's broker link drops and comes back it tells every channel in-band (a
// `system` message, extension "system": status "error", then "ok"; issue 12 §1). The page's
// stream channel then resyncs at once what it shows from live events: the chat (rows lost during
// the outage, which no later live row reveals) and the stream's own state — instead of waiting
// for the 30 s verification or a later row.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatLog } from "../../src/onair/web/static/client/chat_log.js";
import { ChatSync } from "../../src/onair/web/static/client/chat_sync.js";
import { LIVE_DELIVERY_LOST, LIVE_DELIVERY_RESTORED, deliveryNotice } from "../../src/onair/web/static/client/channel.js";
import { Emitter } from "../../src/onair/web/static/client/emitter.js";
import { RealtimeSocket } from "../../src/onair/web/static/client/realtime_socket.js";
import { streamChannel } from "../../src/onair/web/static/pages/stream_channel.js";
import { FakeTimers } from "./support/fake_timers.mjs";
import { FakeRealtimeServer } from "./support/fake_realtime_server.mjs";

const TOPIC = "realtime:stream:s1";

function notify(server, status, message) {
  for (const conn of server.connections) {
    if (conn.topics.has(TOPIC)) {
      conn._push({ join_ref: null, ref: null, topic: TOPIC, event: "system", payload: { extension: "system", status, message, channel: "stream:s1" } });
    }
  }
}

async function connected(vsn) {
  const timers = new FakeTimers();
  const server = new FakeRealtimeServer(timers);
  const socket = new RealtimeSocket({ url: "ws://onair.test/realtime/v1", apikey: "anon", vsn, WebSocket: server.WebSocket, timers, now: timers.now });
  return { timers, server, socket };
}

for (const vsn of ["2.0.0", "1.0.0"]) {
  test(`chat missed during a broker outage is resynced as soon as delivery is restored (vsn ${vsn})`, async () => {
    const { timers, server, socket } = await connected(vsn);
    const log = new ChatLog();
    const sync = new ChatSync({ api: server.api(), streamId: "s1", log, timers, pollMs: 3000, verifyMs: 30000 });
    const channel = socket.channel("stream:s1", { private: true });
    sync.bind(channel);
    channel.subscribe();
    socket.connect();
    sync.setRealtimeAvailable(true);
    await timers.advance(100);
    assert.equal(channel.state, "joined");
    server.insertChat("s1", "one");
    await timers.advance(50);
    assert.deepEqual(log.messages().map((m) => m.seq), [1]);

    notify(server, "error", LIVE_DELIVERY_LOST);
    server.dropLive = 2; // what the node's broker lost while its link was down
    server.insertChat("s1", "two");
    server.insertChat("s1", "three");
    await timers.advance(50);
    assert.equal(channel.state, "joined", "a delivery notice does not close the channel");
    assert.equal(channel.lastError, null, "nor is it a channel error");
    const before = sync.resyncs;
    notify(server, "ok", LIVE_DELIVERY_RESTORED);
    await timers.advance(100); // far less than the 30 s verification
    assert.ok(sync.resyncs > before, "restoring delivery resyncs");
    assert.deepEqual(log.messages().map((m) => m.body), ["one", "two", "three"]);
    sync.stop();
  });
}

test("while delivery is interrupted chat is polled like with the socket down", async () => {
  const { timers, server, socket } = await connected("2.0.0");
  const log = new ChatLog();
  const sync = new ChatSync({ api: server.api(), streamId: "s1", log, timers, pollMs: 3000, verifyMs: 30000 });
  const channel = socket.channel("stream:s1", { private: true });
  sync.bind(channel);
  channel.subscribe();
  socket.connect();
  sync.setRealtimeAvailable(true);
  await timers.advance(100);
  notify(server, "error", LIVE_DELIVERY_LOST);
  server.dropLive = 1;
  server.insertChat("s1", "during the outage");
  await timers.advance(3500); // one poll period, not the 30 s verification
  assert.deepEqual(log.messages().map((m) => m.body), ["during the outage"]);
  sync.stop();
});

test("the stream page re-reads the stream when delivery is restored and after a rejoin", async () => {
  const { timers, server, socket } = await connected("2.0.0");
  let reads = 0;
  const streams = [];
  const api = { ...server.api(), getStream: async () => ({ id: "s1", status: `live-${++reads}` }) };
  const manager = Object.assign(new Emitter(), { online: true });
  const { channel, sync } = streamChannel({
    socket, manager, api, config: {}, session: { token: "t", userId: "u1" }, streamId: "s1",
    onStream: (stream) => streams.push(stream.status), timers, storage: null,
  });
  channel.subscribe();
  socket.connect();
  await timers.advance(100);
  assert.equal(channel.state, "joined");
  assert.equal(reads, 0, "the page read the stream itself before joining");

  notify(server, "error", LIVE_DELIVERY_LOST);
  await timers.advance(50);
  assert.equal(reads, 0);
  notify(server, "ok", LIVE_DELIVERY_RESTORED);
  await timers.advance(50);
  assert.deepEqual(streams, ["live-1"]);

  server.channelFault("error"); // the channel crashes and rejoins: missed events are re-read too
  await timers.advance(3000);
  assert.equal(channel.state, "joined");
  assert.deepEqual(streams, ["live-1", "live-2"]);
  sync.stop();
});

test("only the server's two delivery notices are recognised", () => {
  assert.deepEqual(deliveryNotice({ extension: "system", status: "error", message: LIVE_DELIVERY_LOST }), { live: false });
  assert.deepEqual(deliveryNotice({ extension: "system", status: "ok", message: LIVE_DELIVERY_RESTORED }), { live: true });
  assert.equal(deliveryNotice({ extension: "system", status: "error", message: "Token has expired 3 seconds ago" }), null);
  assert.equal(deliveryNotice({ extension: "postgres_changes", status: "ok", message: LIVE_DELIVERY_RESTORED }), null);
  assert.equal(deliveryNotice(undefined), null);
});
