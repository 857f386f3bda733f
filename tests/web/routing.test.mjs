// Property 4: video stream routing — a viewer only ever attaches tracks of the stream it
// watches, for any sequence of publish/unpublish events across streams.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { TrackRouter } from "../../src/onair/web/static/client/media/track_router.js";
import { Signaller, HOST, EVERYONE } from "../../src/onair/web/static/client/media/signalling.js";

const STREAMS = ["s1", "s2", "s3"];
const event = fc.record({
  type: fc.constantFrom("publish", "unpublish"),
  streamId: fc.constantFrom(...STREAMS),
  publisherId: fc.constantFrom("p1", "p2"),
  kind: fc.constantFrom("video", "audio", undefined),
  version: fc.integer({ min: 0, max: 3 }),
});

test("Property 4: video stream routing", () => {
  fc.assert(
    fc.property(fc.constantFrom(...STREAMS), fc.array(event, { maxLength: 80 }), (watched, events) => {
      const attached = new Map();
      const everAttached = [];
      const router = new TrackRouter({
        streamId: watched,
        attach: (slot) => {
          everAttached.push(slot.track);
          attached.set(`${slot.publisherId}|${slot.kind}`, slot.track);
        },
        detach: (slot) => {
          assert.equal(attached.get(`${slot.publisherId}|${slot.kind}`), slot.track, "detached a track that was not attached");
          attached.delete(`${slot.publisherId}|${slot.kind}`);
        },
      });
      const model = new Map(); // what should be attached: watched stream's latest track per slot
      for (const e of events) {
        const kind = e.kind ?? "video";
        const track = { id: `${e.streamId}/${e.publisherId}/${kind}/${e.version}`, stream: e.streamId, kind };
        if (e.type === "publish") {
          router.publish({ streamId: e.streamId, publisherId: e.publisherId, kind, track });
          if (e.streamId === watched) model.set(`${e.publisherId}|${kind}`, track.id);
        } else {
          router.unpublish({ streamId: e.streamId, publisherId: e.publisherId, kind: e.kind });
          if (e.streamId === watched) {
            for (const k of e.kind ? [e.kind] : ["video", "audio"]) model.delete(`${e.publisherId}|${k}`);
          }
        }
        assert.ok(everAttached.every((t) => t.stream === watched), "a track of another stream was attached");
        assert.deepEqual(new Map([...attached].map(([k, t]) => [k, t.id])), model);
      }
      router.clear();
      assert.equal(attached.size, 0);
    }),
  );
});

test("signalling messages of another stream, or for another peer, never reach a peer", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          stream_id: fc.constantFrom("s1", "s2"),
          from: fc.constantFrom("v1", "v2", "h1"),
          to: fc.constantFrom("v1", "v2", HOST, EVERYONE),
          kind: fc.constantFrom("offer", "answer", "ice", "hello", "bye"),
        }),
        { maxLength: 40 },
      ),
      (messages) => {
        let listener = null;
        let listenedTo = null;
        const channel = { listen: (_t, f, cb) => ((listener = cb), (listenedTo = f.event)), send: () => Promise.resolve("ok") };
        const viewer = new Signaller({ channel, streamId: "s1", peerId: "v1" });
        assert.equal(listenedTo, "webrtc:signal", "viewers take signals only from the host event");
        const got = [];
        viewer.onMessage((m) => got.push(m));
        for (const m of messages) listener({ event: "signal", payload: m });
        const expected = messages.filter((m) => m.stream_id === "s1" && m.from !== "v1" && (m.to === "v1" || m.to === EVERYONE));
        assert.deepEqual(got, expected);
      },
    ),
  );
});
