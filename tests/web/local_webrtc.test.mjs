// Local WebRTC mode: signalling between the studio (host) and viewers over a realtime channel,
// with a fake RTCPeerConnection that "connects" when offer and answer have been exchanged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RealtimeSocket } from "../../src/onair/web/static/client/realtime_socket.js";
import { Signaller } from "../../src/onair/web/static/client/media/signalling.js";
import { LocalWebRtcHost, LocalWebRtcViewer } from "../../src/onair/web/static/client/media/local_webrtc.js";
import { TrackRouter } from "../../src/onair/web/static/client/media/track_router.js";
import { FakeTimers } from "./support/fake_timers.mjs";
import { FakeRealtimeServer } from "./support/fake_realtime_server.mjs";

function fakeRtc() {
  const offers = new Map(); // sdp -> host pc
  let n = 0;
  class FakePeerConnection {
    constructor(config) {
      this.config = config;
      this.tracks = [];
      this.connectionState = "new";
      this.remoteDescription = null;
      this.closed = false;
    }
    addTrack(track) {
      this.tracks.push(track);
      return { track };
    }
    getSenders() {
      this.params ??= new Map(); // track -> RTCRtpSendParameters, as the browser keeps them per sender
      return this.tracks.map((track) => {
        if (!this.params.has(track)) this.params.set(track, { encodings: [{ active: true }] });
        return {
          track,
          replaceTrack: async (t) => (this.tracks[this.tracks.indexOf(track)] = t),
          getParameters: () => structuredClone(this.params.get(track)),
          setParameters: async (p) => this.params.set(track, structuredClone(p)),
        };
      });
    }
    async createOffer() {
      const sdp = `offer-${++n}`;
      offers.set(sdp, this);
      return { type: "offer", sdp };
    }
    async createAnswer() {
      return { type: "answer", sdp: `answer-to-${this.remoteDescription.sdp}` };
    }
    async setLocalDescription(d) {
      this.localDescription = d;
      this.onicecandidate?.({ candidate: { candidate: `cand-${d.sdp}`, toJSON() { return { candidate: this.candidate }; } } });
    }
    async setRemoteDescription(d) {
      this.remoteDescription = d;
      if (d.type === "offer") {
        this.host = offers.get(d.sdp);
        for (const track of this.host.tracks) this.ontrack?.({ track, streams: [] });
      } else {
        this.peer = [...offers.values()].find((pc) => pc === this);
        this._connect();
      }
    }
    async addIceCandidate() {}
    _connect() {
      for (const pc of [this, ...viewersOf(this)]) {
        pc.connectionState = "connected";
        pc.onconnectionstatechange?.();
      }
    }
    close() {
      this.closed = true;
      this.connectionState = "closed";
    }
  }
  const all = [];
  const Tracked = class extends FakePeerConnection {
    constructor(c) {
      super(c);
      all.push(this);
    }
  };
  const viewersOf = (host) => all.filter((pc) => pc.host === host);
  return { RTCPeerConnection: Tracked, all };
}

async function setup({ maxViewers = 8, viewers = 2 } = {}) {
  const timers = new FakeTimers();
  const server = new FakeRealtimeServer(timers);
  const rtc = fakeRtc();
  const make = () => new RealtimeSocket({ url: "ws://x/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
  const hostSocket = make();
  const hostChannel = hostSocket.channel("stream:s1", { private: true });
  const host = new LocalWebRtcHost({ signaller: new Signaller({ channel: hostChannel, streamId: "s1", peerId: "host:h", isHost: true }), RTCPeerConnection: rtc.RTCPeerConnection, maxViewers, timers, now: timers.now });
  hostChannel.on("state", (s) => s === "joined" && host.announce());
  const camera = { getTracks: () => [{ kind: "video", id: "cam" }, { kind: "audio", id: "mic" }] };
  const peers = [];
  for (let i = 0; i < viewers; i += 1) {
    const socket = make();
    const channel = socket.channel("stream:s1", { private: true });
    const attached = new Map();
    const router = new TrackRouter({ streamId: "s1", attach: (s) => attached.set(s.kind, s.track.id), detach: (s) => attached.delete(s.kind) });
    const viewer = new LocalWebRtcViewer({ signaller: new Signaller({ channel, streamId: "s1", peerId: `v${i}` }), router, streamId: "s1", RTCPeerConnection: rtc.RTCPeerConnection, timers, helloEveryMs: 1000 });
    channel.on("state", (s) => s === "joined" && viewer.channelJoined());
    const statuses = [];
    viewer.on("status", (s) => statuses.push(s));
    peers.push({ socket, channel, viewer, attached, statuses });
  }
  return { timers, server, rtc, hostSocket, hostChannel, host, camera, peers };
}

/** The host on air and every viewer started and connected, media settled. */
async function onAirWithViewers({ timers, hostSocket, hostChannel, host, camera, peers }) {
  hostChannel.subscribe();
  hostSocket.connect();
  for (const p of peers) {
    p.channel.subscribe();
    p.socket.connect();
  }
  await timers.advance(20);
  host.start(camera);
  for (const p of peers) await p.viewer.start();
  await timers.advance(500);
}

test("viewers wait for the host, then receive its tracks; the host counts them", async () => {
  const { timers, hostSocket, hostChannel, host, camera, peers } = await setup();
  for (const p of peers) {
    p.channel.subscribe();
    p.socket.connect();
    await p.viewer.start();
  }
  await timers.advance(2500);
  for (const p of peers) assert.equal(p.viewer.status, "no-publisher");
  hostChannel.subscribe();
  hostSocket.connect();
  await timers.advance(50);
  host.start(camera);
  await timers.advance(1500);
  for (const p of peers) {
    assert.equal(p.viewer.status, "playing");
    assert.deepEqual(Object.fromEntries(p.attached), { video: "cam", audio: "mic" });
  }
  assert.equal(host.viewerCount, 2);
});

test("the viewer cap answers 'full'; a host 'bye' (pause/end) empties the player", async () => {
  const { timers, hostSocket, hostChannel, host, camera, peers } = await setup({ maxViewers: 1 });
  hostChannel.subscribe();
  hostSocket.connect();
  await timers.advance(20);
  host.start(camera);
  for (const p of peers) {
    p.channel.subscribe();
    p.socket.connect();
    await p.viewer.start();
    await timers.advance(100);
  }
  await timers.advance(500);
  assert.equal(peers[0].viewer.status, "playing");
  assert.equal(peers[1].viewer.status, "failed");
  host.stop();
  await timers.advance(50);
  assert.equal(peers[0].viewer.status, "no-publisher");
  assert.equal(peers[0].attached.size, 0);
});

test("after the host's socket comes back it announces itself and a viewer that lost media reconnects", async () => {
  const { timers, server, hostSocket, hostChannel, host, camera, peers } = await setup({ viewers: 1 });
  const [p] = peers;
  hostChannel.subscribe();
  hostSocket.connect();
  p.channel.subscribe();
  p.socket.connect();
  await timers.advance(20);
  host.start(camera);
  await p.viewer.start();
  await timers.advance(200);
  assert.equal(p.viewer.status, "playing");
  // the peer connection fails while the realtime server restarts
  p.viewer.pc.connectionState = "failed";
  p.viewer.pc.onconnectionstatechange();
  server.kill();
  await timers.advance(100);
  assert.equal(p.viewer.status, "failed");
  server.revive();
  hostSocket.connect();
  p.socket.connect();
  await timers.advance(3000);
  assert.equal(p.viewer.status, "playing");
  assert.deepEqual(Object.fromEntries(p.attached), { video: "cam", audio: "mic" });
});

test("a viewer ignores an offer sent as a viewer event (only the host event may carry offers)", async () => {
  const { timers, peers } = await setup({ viewers: 2 });
  const [a, b] = peers;
  for (const p of peers) {
    p.channel.subscribe();
    p.socket.connect();
  }
  await a.viewer.start();
  await timers.advance(20);
  await b.channel.send("signal", { stream_id: "s1", from: "host:evil", to: "v0", kind: "offer", data: { type: "offer", sdp: "x" } });
  await timers.advance(20);
  assert.equal(a.viewer.pc, null);
  // the same offer on the host event is accepted (so the check above is not vacuous)
  const fake = { stream_id: "s1", from: "host:h", to: "v0", kind: "offer", data: { type: "offer", sdp: "x" } };
  a.viewer._onSignal(fake).catch(() => {});
  await timers.advance(20);
  assert.ok(a.viewer.status === "failed" || a.viewer.pc !== null);
});

test("a co-host on camera: viewers get both hosts, the seller's connection is not disturbed, the co-host's leaving keeps the seller's video", async () => {
  const { timers, server, rtc, hostSocket, hostChannel, host, camera, peers } = await setup({ viewers: 2 });
  const slots = peers.map(() => new Map()); // "publisher|kind" -> track id
  for (const [i, p] of peers.entries()) {
    p.viewer.router._attach = (s) => slots[i].set(`${s.publisherId}|${s.kind}`, s.track.id);
    p.viewer.router._detach = (s) => slots[i].delete(`${s.publisherId}|${s.kind}`);
  }
  await onAirWithViewers({ timers, hostSocket, hostChannel, host, camera, peers });
  const sellerPcs = peers.map((p) => p.viewer.peers.get("host:h").pc);

  // the co-host comes on air later, from its own page (socket)
  const coSocket = new RealtimeSocket({ url: "ws://x/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
  const coChannel = coSocket.channel("stream:s1", { private: true });
  const cohost = new LocalWebRtcHost({ signaller: new Signaller({ channel: coChannel, streamId: "s1", peerId: "host:c", isHost: true }), RTCPeerConnection: rtc.RTCPeerConnection });
  coChannel.on("state", (s) => s === "joined" && cohost.announce());
  coChannel.subscribe();
  coSocket.connect();
  await timers.advance(20);
  cohost.start({ getTracks: () => [{ kind: "video", id: "co-cam" }, { kind: "audio", id: "co-mic" }] });
  await timers.advance(500);
  for (const [i, p] of peers.entries()) {
    assert.deepEqual(Object.fromEntries(slots[i]), { "host:h|video": "cam", "host:h|audio": "mic", "host:c|video": "co-cam", "host:c|audio": "co-mic" });
    assert.equal(p.viewer.peers.get("host:h").pc, sellerPcs[i], "the seller's connection was not renegotiated");
    assert.equal(p.viewer.status, "playing");
  }
  assert.equal(cohost.viewerCount, 2);

  // demoted (or left): the co-host stops; viewers keep the seller's video
  cohost.stop();
  await timers.advance(100);
  for (const [i, p] of peers.entries()) {
    assert.deepEqual(Object.fromEntries(slots[i]), { "host:h|video": "cam", "host:h|audio": "mic" });
    assert.equal(p.viewer.status, "playing");
    assert.equal(p.viewer.peers.has("host:c"), false);
  }
});

test("quality adaptation in local mode: a viewer's layer changes the encoding sent to that viewer only, and comes back", async () => {
  const { timers, hostSocket, hostChannel, host, camera, peers } = await setup({ viewers: 2 });
  await onAirWithViewers({ timers, hostSocket, hostChannel, host, camera, peers });
  const videoEncoding = (viewerId) => {
    const { pc } = host.peers.get(viewerId);
    return pc.getSenders().find((s) => s.track.kind === "video").getParameters().encodings[0];
  };
  const layers = [];
  peers[0].viewer.on("layer", (l) => layers.push(l));
  peers[0].viewer.setLayer("low");
  await timers.advance(50);
  assert.deepEqual(videoEncoding("v0"), { active: true, scaleResolutionDownBy: 4, maxBitrate: 250_000 });
  assert.deepEqual(videoEncoding("v1"), { active: true }, "the other viewer keeps full quality");
  peers[0].viewer.setLayer("audio");
  await timers.advance(50);
  assert.equal(videoEncoding("v0").active, false);
  peers[0].viewer.setLayer("high");
  await timers.advance(50);
  assert.deepEqual(videoEncoding("v0"), { active: true, scaleResolutionDownBy: 1 });
  assert.deepEqual(layers, ["low", "audio", "high"]);
  // a viewer that reconnects while low asks for low again on the new connection
  peers[1].viewer.setLayer("low");
  await timers.advance(50);
  peers[1].viewer.pc.connectionState = "failed";
  peers[1].viewer.pc.onconnectionstatechange();
  await timers.advance(3000);
  assert.equal(peers[1].viewer.status, "playing");
  assert.equal(videoEncoding("v1").scaleResolutionDownBy, 4);
});

/** A buyer's own socket on the stream channel that signals as it likes (any tab part of its own user). */
async function attackerOn(server, timers) {
  const socket = new RealtimeSocket({ url: "ws://x/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
  const channel = socket.channel("stream:s1", { private: true });
  channel.subscribe();
  socket.connect();
  await timers.advance(20);
  return (tab, kind = "hello") => channel.send("signal", { stream_id: "s1", from: `viewer:mallory:${tab}`, to: "host", kind, data: {} });
}

test("one user cannot hold the host's viewer slots: a third tab of theirs replaces their oldest, everyone else still gets in", async () => {
  // four slots: without the per-user share mallory's six hellos would take all of them
  const ctx = await setup({ maxViewers: 4, viewers: 2 });
  const { timers, server, hostSocket, hostChannel, host, camera, peers } = ctx;
  hostChannel.subscribe();
  hostSocket.connect();
  await timers.advance(20);
  host.start(camera);
  const hello = await attackerOn(server, timers);
  for (let tab = 1; tab <= 6; tab += 1) {
    await hello(`t${tab}`); // never answers any offer
    await timers.advance(1_000); // a user's hellos get an offer at most once a second
  }
  assert.deepEqual([...host.peers.keys()], ["viewer:mallory:t5", "viewer:mallory:t6"]);
  for (const p of peers) {
    p.channel.subscribe();
    p.socket.connect();
    await p.viewer.start();
  }
  await timers.advance(500);
  for (const p of peers) assert.equal(p.viewer.status, "playing");
  assert.equal(host.viewerCount, 2);
  assert.equal(host.peers.size, 4); // mallory's two (never connected) and the two viewers
});

test("an offer nobody answers gives its slot back after connectTimeoutMs; connected viewers keep theirs", async () => {
  const ctx = await setup({ maxViewers: 2, viewers: 2 });
  const { timers, server, hostSocket, hostChannel, host, camera, peers } = ctx;
  const [first, late] = peers;
  hostChannel.subscribe();
  hostSocket.connect();
  first.channel.subscribe();
  first.socket.connect();
  await timers.advance(20);
  host.start(camera);
  await first.viewer.start();
  await timers.advance(200);
  assert.equal(first.viewer.status, "playing");
  const hello = await attackerOn(server, timers);
  await hello("t1");
  await timers.advance(50);
  assert.equal(host.peers.size, 2); // full now: the late viewer is told so
  late.channel.subscribe();
  late.socket.connect();
  await late.viewer.start();
  await timers.advance(500);
  assert.equal(late.viewer.status, "failed");
  await timers.advance(20_000); // the unanswered offer expires; the late viewer's next hello gets in
  assert.ok(!host.peers.has("viewer:mallory:t1"));
  assert.equal(first.viewer.status, "playing");
  await timers.advance(3_000);
  assert.equal(late.viewer.status, "playing");
  assert.equal(host.viewerCount, 2);
});

test("a user's hellos cost the host at most one new connection a second, other users' are not held up", async () => {
  const ctx = await setup({ maxViewers: 8, viewers: 1 });
  const { timers, server, hostSocket, hostChannel, host, camera, peers, rtc } = ctx;
  hostChannel.subscribe();
  hostSocket.connect();
  await timers.advance(20);
  host.start(camera);
  const hello = await attackerOn(server, timers);
  const before = rtc.all.length;
  for (let i = 0; i < 100; i += 1) await hello(`f${i % 2}`); // 100 hellos within the same second
  await timers.advance(10);
  assert.equal(rtc.all.length - before, 1);
  const [p] = peers;
  p.channel.subscribe();
  p.socket.connect();
  await p.viewer.start();
  await timers.advance(500);
  assert.equal(p.viewer.status, "playing");
});
