// The Agora adapter against a stub of the SDK's documented interface (spec agora.md part B).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AgoraViewer, AgoraPublisher, STREAM_LOW, STREAM_HIGH, FALLBACK_LOW_THEN_AUDIO, videoTrackOf } from "../../src/onair/web/static/client/media/agora.js";
import { Failure } from "../../src/onair/web/static/client/media/failure.js";
import { FakeTimers } from "./support/fake_timers.mjs";
import { TrackRouter } from "../../src/onair/web/static/client/media/track_router.js";
import { createStubAgora } from "./support/stub_agora.mjs";

const CREDS = { token: "t1", app_id: "app", channel: "onair_s1", uid: 42, role: "subscriber", expires_at: "2030-01-01T00:00:00Z", refresh_after: "2029-12-31T23:00:00Z" };

function setup(options = {}) {
  const AgoraRTC = createStubAgora(options);
  let n = 1;
  const api = {
    rtcToken: async () => ({ ...CREDS, ...(options.creds ?? {}) }),
    refreshRtcToken: async () => ({ ...CREDS, token: `t${++n}` }),
  };
  const container = { id: "player" };
  const attached = [];
  const router = new TrackRouter({ streamId: "s1", attach: (s) => attached.push(s), detach: (s) => attached.splice(attached.indexOf(s), 1) });
  const viewer = new AgoraViewer({ AgoraRTC, api, streamId: "s1", container, router, ...(options.viewer ?? {}) });
  const statuses = [];
  viewer.on("status", (s) => statuses.push(s));
  return { AgoraRTC, api, viewer, container, attached, statuses, router };
}

const names = (calls) => calls.map((c) => c[0]);

test("handlers are registered before join, as an audience member in live mode with vp8", async () => {
  const { AgoraRTC, viewer } = setup();
  await viewer.start();
  const calls = AgoraRTC.calls;
  assert.deepEqual(calls[0], ["createClient", { mode: "live", codec: "vp8", role: "audience" }]);
  const joinAt = names(calls).indexOf("join");
  for (const event of ["user-published", "user-unpublished", "user-left", "connection-state-change", "token-privilege-will-expire", "token-privilege-did-expire", "network-quality", "stream-fallback"]) {
    const at = calls.findIndex((c) => c[0] === "on" && c[1] === event);
    assert.ok(at >= 0 && at < joinAt, `${event} registered after join`);
  }
  assert.ok(names(calls).indexOf("setRemoteDefaultVideoStreamType") < joinAt, "default stream type set before join");
  assert.deepEqual(calls[joinAt], ["join", "app", "onair_s1", "t1", 42]);
});

test("a publisher already in the channel is subscribed during join and played into the container with fit contain", async () => {
  const host = { uid: 7 };
  const { AgoraRTC, viewer, container, attached, statuses } = setup({ publishersInChannel: [{ user: host, mediaType: "video" }, { user: host, mediaType: "audio" }] });
  await viewer.start();
  const calls = AgoraRTC.calls;
  const sub = calls.findIndex((c) => c[0] === "subscribe" && c[2] === "video");
  const play = calls.findIndex((c) => c[0] === "play" && c[2] === "video");
  assert.ok(sub >= 0 && play > sub, "play only after subscribe");
  assert.deepEqual(calls[play], ["play", 7, "video", container, { fit: "contain" }]);
  assert.ok(calls.some((c) => c[0] === "setStreamFallbackOption" && c[1] === 7 && c[2] === FALLBACK_LOW_THEN_AUDIO));
  assert.deepEqual(attached.map((s) => s.kind).sort(), ["audio", "video"]);
  assert.equal(statuses.at(-1), "playing");
});

test("no publisher yet → waiting; unpublish → waiting again; a vanished track is not played", async () => {
  const { AgoraRTC, viewer, statuses, attached } = setup();
  await viewer.start();
  assert.equal(statuses.at(-1), "no-publisher");
  const client = AgoraRTC.clients[0];
  const host = { uid: 9 };
  await client.fire("user-published", host, "video");
  assert.equal(statuses.at(-1), "playing");
  await client.fire("user-unpublished", host, "video");
  assert.equal(statuses.at(-1), "no-publisher");
  assert.equal(attached.length, 0);
  await client.fire("user-published", { uid: 10, gone: true }, "video");
  assert.equal(attached.length, 0);
  assert.ok(!AgoraRTC.calls.some((c) => c[0] === "play" && c[1] === 10));
});

test("token-privilege-will-expire fetches a fresh token and calls renewToken; did-expire leaves and joins again", async () => {
  const { AgoraRTC, viewer } = setup();
  await viewer.start();
  const client = AgoraRTC.clients[0];
  await client.fire("token-privilege-will-expire");
  assert.deepEqual(AgoraRTC.calls.at(-1), ["renewToken", "t2"]);
  await client.fire("token-privilege-did-expire");
  const tail = AgoraRTC.calls.slice(-2);
  assert.deepEqual(tail[0], ["leave"]);
  assert.deepEqual(tail[1], ["join", "app", "onair_s1", "t3", 42]);
});

test("autoplay failure is reported so the page can show 'tap for sound'", async () => {
  const { AgoraRTC, viewer } = setup();
  let blocked = 0;
  viewer.on("autoplay-blocked", () => blocked++);
  await viewer.start();
  AgoraRTC.onAutoplayFailed();
  assert.equal(blocked, 1);
});

test("dual stream: poor network readings switch to the low stream after two readings, back to high after five good ones", async () => {
  const host = { uid: 7 };
  const { AgoraRTC, viewer } = setup({ publishersInChannel: [{ user: host, mediaType: "video" }] });
  await viewer.start();
  const client = AgoraRTC.clients[0];
  const types = () => AgoraRTC.calls.filter((c) => c[0] === "setRemoteVideoStreamType");
  await client.fire("network-quality", { downlinkNetworkQuality: 4, uplinkNetworkQuality: 1 });
  assert.equal(types().length, 0, "one bad reading is a blip");
  await client.fire("network-quality", { downlinkNetworkQuality: 4 });
  assert.deepEqual(types().at(-1), ["setRemoteVideoStreamType", 7, STREAM_LOW]);
  for (let i = 0; i < 4; i += 1) await client.fire("network-quality", { downlinkNetworkQuality: 1 });
  assert.equal(types().length, 1);
  await client.fire("network-quality", { downlinkNetworkQuality: 1 });
  assert.deepEqual(types().at(-1), ["setRemoteVideoStreamType", 7, STREAM_HIGH]);
  const layers = [];
  viewer.on("layer", (l) => layers.push(l));
  await client.fire("stream-fallback", 7, "fallback");
  assert.deepEqual(layers, ["audio"]);
});

test("connection-state-change drives the media status; TOKEN_EXPIRE re-joins", async () => {
  const { AgoraRTC, viewer, statuses } = setup();
  await viewer.start();
  const client = AgoraRTC.clients[0];
  await client.fire("connection-state-change", "RECONNECTING", "CONNECTED");
  assert.equal(statuses.at(-1), "failed");
  await client.fire("connection-state-change", "CONNECTED", "RECONNECTING");
  assert.equal(statuses.at(-1), "no-publisher");
  await client.fire("connection-state-change", "DISCONNECTED", "CONNECTED", "TOKEN_EXPIRE");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(AgoraRTC.calls.at(-1)[0], "join");
});

test("Property 4: video stream routing — after switching streams, late events of the previous stream's client are never attached", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ old: fc.boolean(), uid: fc.integer({ min: 1, max: 3 }), kind: fc.constantFrom("video", "audio"), publish: fc.boolean() }), { maxLength: 25 }),
      async (events) => {
        const AgoraRTC = createStubAgora();
        const api = { rtcToken: async () => ({ ...CREDS }), refreshRtcToken: async () => ({ ...CREDS }) };
        const routers = {};
        const viewers = {};
        for (const id of ["s1", "s2"]) {
          routers[id] = new TrackRouter({ streamId: id });
          viewers[id] = new AgoraViewer({ AgoraRTC, api, streamId: id, container: {}, router: routers[id] });
        }
        await viewers.s1.start();
        const oldHandlers = new Map(AgoraRTC.clients[0].handlers); // a late event may still be queued
        await viewers.s1.stop();
        await viewers.s2.start();
        const current = AgoraRTC.clients[1];
        const model = new Set();
        for (const e of events) {
          const user = { uid: e.uid };
          const name = e.publish ? "user-published" : "user-unpublished";
          if (e.old) await oldHandlers.get(name)?.(user, e.kind);
          else {
            await current.fire(name, user, e.kind);
            if (e.publish) model.add(`${e.uid}|${e.kind}`);
            else model.delete(`${e.uid}|${e.kind}`);
          }
          assert.equal(routers.s1.slots.size, 0, "the stopped stream shows a track");
          assert.deepEqual(new Set(routers.s2.slots.keys()), model);
          for (const slot of routers.s2.slots.values()) assert.equal(slot.track.client, 1, "a track of the previous stream's client");
        }
      },
    ),
    { numRuns: 60 },
  );
});

test("the publisher joins as host, enables the low stream and publishes camera and microphone", async () => {
  const AgoraRTC = createStubAgora();
  const api = { rtcToken: async () => ({ ...CREDS, role: "publisher" }), refreshRtcToken: async () => ({ ...CREDS, token: "fresh" }) };
  const publisher = new AgoraPublisher({ AgoraRTC, api, streamId: "s1" });
  await publisher.start({ cameraId: "cam2" });
  const calls = names(AgoraRTC.calls);
  // devices first: the seller sees the preview even when Agora cannot be reached
  assert.deepEqual(AgoraRTC.calls[0], ["createMicrophoneAndCameraTracks", {}, { cameraId: "cam2", encoderConfig: "720p_2" }]);
  assert.deepEqual(AgoraRTC.calls[1], ["createClient", { mode: "live", codec: "vp8", role: "host" }]);
  assert.equal(publisher.status, "sending");
  assert.ok(calls.indexOf("enableDualStream") < calls.indexOf("publish"));
  assert.deepEqual(AgoraRTC.calls.at(-1), ["publish", ["audio", "video"]]);
  await AgoraRTC.clients[0].fire("token-privilege-will-expire");
  assert.deepEqual(AgoraRTC.calls.at(-1), ["renewToken", "fresh"]);
  const buyer = new AgoraPublisher({ AgoraRTC, api: { rtcToken: async () => ({ ...CREDS, role: "subscriber" }) }, streamId: "s1" });
  await assert.rejects(buyer.start(), (err) => err.code === Failure.TOKEN_REFUSED && /may not/.test(err.message));
  assert.equal(buyer.status, "failed");
});

test("the studio's camera track is found by trackMediaType (the real SDK's tracks have no `kind`)", async () => {
  const AgoraRTC = createStubAgora();
  const publisher = new AgoraPublisher({ AgoraRTC, api: { rtcToken: async () => ({ ...CREDS, role: "publisher" }) }, streamId: "s1" });
  const tracks = await publisher.openDevices();
  assert.equal(tracks.some((t) => "kind" in t), false, "the stub is as the real SDK");
  assert.equal(videoTrackOf(tracks).trackMediaType, "video");
  const box = { id: "preview-box" };
  publisher.previewInto(box);
  assert.deepEqual(AgoraRTC.calls.find((c) => c[0] === "play"), ["play", "local", "video", box, { fit: "contain" }]);
  const devices = await publisher.devices();
  assert.deepEqual([devices.cameras.length, devices.microphones.length, devices.camera, devices.microphone], [1, 1, "video-device-1", "audio-device-1"]);
  await publisher.setDevice("video", "cam-2");
  assert.deepEqual(AgoraRTC.calls.at(-1), ["setDevice", "video", "cam-2"]);
});

test("no route to Agora: the viewer's join gives up after the deadline with 'service-unreachable', leaving the pending join", async () => {
  const timers = new FakeTimers();
  const { AgoraRTC, viewer, statuses } = setup({ unreachable: true, viewer: { timers, joinTimeoutMs: 12_000 } });
  let outcome = null;
  viewer.start().then(() => (outcome = "joined"), (err) => (outcome = err));
  await timers.advance(11_900);
  assert.equal(outcome, null, "still joining before the deadline");
  await timers.advance(200);
  assert.equal(outcome.code, Failure.SERVICE_UNREACHABLE);
  assert.ok(names(AgoraRTC.calls).includes("leave"), "leave() aborted the SDK's endless retries");
  assert.equal(statuses.at(-1), "failed");
  assert.equal(viewer.client, null);
  // the network is back: trying again joins
  AgoraRTC.unreachable = false;
  await viewer.start();
  assert.equal(statuses.at(-1), "no-publisher");
});

test("no route to Agora: the publisher never says 'sending', keeps its preview, and a retry publishes once the network is back", async () => {
  const timers = new FakeTimers();
  const AgoraRTC = createStubAgora({ unreachable: true });
  const publisher = new AgoraPublisher({ AgoraRTC, api: { rtcToken: async () => ({ ...CREDS, role: "publisher" }) }, streamId: "s1", timers, joinTimeoutMs: 5_000 });
  const statuses = [];
  publisher.on("status", (s, info) => statuses.push([s, info.code]));
  const first = publisher.start();
  const second = publisher.start(); // a double click shares the attempt
  assert.equal(first, second);
  let failure = null;
  first.catch((err) => (failure = err));
  await timers.advance(5_001);
  assert.equal(failure.code, Failure.SERVICE_UNREACHABLE);
  assert.deepEqual(statuses, [["joining", undefined], ["failed", Failure.SERVICE_UNREACHABLE]]);
  assert.equal(names(AgoraRTC.calls).includes("publish"), false);
  assert.equal(publisher.tracks.length, 2, "the camera stays open for the preview");
  AgoraRTC.unreachable = false;
  await publisher.start();
  assert.equal(publisher.status, "sending");
  assert.deepEqual(AgoraRTC.calls.filter((c) => c[0] === "createMicrophoneAndCameraTracks").length, 1, "devices are opened once");
  assert.deepEqual(AgoraRTC.calls.at(-1), ["publish", ["audio", "video"]]);
});

test("a refused camera is reported as such, before any join", async () => {
  const AgoraRTC = createStubAgora({ devicesError: "PERMISSION_DENIED" });
  const publisher = new AgoraPublisher({ AgoraRTC, api: { rtcToken: async () => ({ ...CREDS, role: "publisher" }) }, streamId: "s1" });
  await assert.rejects(publisher.start(), (err) => err.code === Failure.CAMERA_REFUSED);
  assert.equal(names(AgoraRTC.calls).includes("join"), false);
});

test("the viewer renews at the server's refresh_after, before the SDK's warning, and again after each renewal", async () => {
  const { FakeTimers } = await import("./support/fake_timers.mjs");
  const timers = new FakeTimers(Date.parse("2030-01-01T00:00:00Z"));
  const AgoraRTC = createStubAgora();
  const issued = (at, n) => ({ ...CREDS, token: `t${n}`, expires_at: new Date(at + 3600_000).toISOString(), refresh_after: new Date(at + 2880_000).toISOString() });
  let n = 1;
  const api = { rtcToken: async () => issued(timers.now(), 1), refreshRtcToken: async () => issued(timers.now(), ++n) };
  const viewer = new AgoraViewer({ AgoraRTC, api, streamId: "s1", container: {}, router: new TrackRouter({ streamId: "s1" }), timers, now: timers.now });
  await viewer.start();
  const renewals = () => AgoraRTC.calls.filter((c) => c[0] === "renewToken").map((c) => c[1]);
  await timers.advance(2880_000 - 1000);
  assert.deepEqual(renewals(), []);
  await timers.advance(2000);
  assert.deepEqual(renewals(), ["t2"]);
  await timers.advance(2880_000);
  assert.deepEqual(renewals(), ["t2", "t3"]);
  await viewer.renewNow(); // the server's "token_renew" event after a role change
  assert.deepEqual(renewals(), ["t2", "t3", "t4"]);
  await viewer.stop();
  assert.equal(timers.pending, 0, "stop() leaves no refresh timer behind");
});

test("a co-host on camera: the first publisher's video plays in the main container, the next in its own tile, released when it goes", async () => {
  const AgoraRTC = createStubAgora();
  const api = { rtcToken: async () => ({ ...CREDS }), refreshRtcToken: async () => ({ ...CREDS }) };
  const router = new TrackRouter({ streamId: "s1" });
  const main = { id: "main" };
  const placed = [];
  const released = [];
  const viewer = new AgoraViewer({
    AgoraRTC, api, streamId: "s1", container: main, router,
    containerFor: (uid, isFirst) => (placed.push([uid, isFirst]), isFirst ? main : { id: `tile-${uid}` }),
    release: (uid) => released.push(uid),
  });
  await viewer.start();
  const client = AgoraRTC.clients[0];
  await client.fire("user-published", { uid: 1 }, "video");
  await client.fire("user-published", { uid: 2 }, "video");
  assert.deepEqual(placed, [[1, true], [2, false]]);
  const plays = AgoraRTC.calls.filter((c) => c[0] === "play" && c[2] === "video").map((c) => c[3].id);
  assert.deepEqual(plays, ["main", "tile-2"]);
  await client.fire("user-unpublished", { uid: 2 }, "video");
  assert.deepEqual(released, [2]);
  assert.equal(viewer.status, "playing", "the seller's video plays on");
  await viewer.stop();
  assert.deepEqual(released, [2, 1]);
});
