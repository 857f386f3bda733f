// Playback telemetry in the browser: frame judging (frame_check.js) and batching (telemetry.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { FrameJudge, classify, frameDifference, lumaStats } from "../../src/onair/web/static/client/frame_check.js";
import { MEDIA_FAILURE_REASONS, TelemetryBatcher, failureReason, seconds } from "../../src/onair/web/static/client/telemetry.js";
import { FakeTimers } from "./support/fake_timers.mjs";

const frame = (pixel) => {
  const data = new Uint8ClampedArray(32 * 32 * 4);
  for (let i = 0; i < 32 * 32; i += 1) data.set(pixel(i), 4 * i);
  return data;
};
const black = () => frame(() => [0, 0, 0, 255]);
const picture = (shift = 0) => frame((i) => [(i * 7 + shift) % 200, (i * 3 + shift) % 180, 90, 255]);

test("luma statistics: black is 0/0, a picture has mean and spread", () => {
  assert.deepEqual({ ...lumaStats(black()), luma: undefined }, { mean: 0, std: 0, luma: undefined });
  const stats = lumaStats(picture());
  assert.ok(stats.mean > 40 && stats.std > 20, JSON.stringify({ mean: stats.mean, std: stats.std }));
  assert.equal(lumaStats(new Uint8ClampedArray(0)).mean, 0);
  assert.equal(frameDifference(new Float32Array(2), new Float32Array(3)), Infinity);
});

test("classify: black, frozen (same pixels twice) and ok (moving)", () => {
  const a = lumaStats(picture(0));
  assert.equal(classify(lumaStats(black()), null), "black");
  assert.equal(classify(a, null), "ok");
  assert.equal(classify(lumaStats(picture(0)), a.luma), "frozen");
  assert.equal(classify(lumaStats(picture(5)), a.luma), "ok");
  // a dark but detailed scene is not black
  assert.equal(classify(lumaStats(frame((i) => (i % 2 ? [40, 40, 40, 255] : [0, 0, 0, 255]))), null), "ok");
});

test("an episode starts after `confirm` bad samples, is reported once, and ends on a good one", () => {
  const judge = new FrameJudge({ confirm: 2 });
  assert.equal(judge.push(lumaStats(black())), null);
  assert.equal(judge.push(lumaStats(black())), "black");
  assert.equal(judge.push(lumaStats(black())), null); // same episode
  assert.equal(judge.push(lumaStats(picture(1))), null);
  assert.equal(judge.episode, null);
  assert.equal(judge.push(lumaStats(black())), null);
  assert.equal(judge.push(lumaStats(black())), "black"); // a new episode
  // a paused player resets: its still picture is not "frozen"
  judge.push(null, { playing: false });
  assert.equal(judge.push(lumaStats(picture(2))), null);
  assert.equal(judge.push(lumaStats(picture(2))), null);
  assert.equal(judge.push(lumaStats(picture(2))), "frozen");
});

test("Property 9: each run of `confirm` or more equal bad verdicts is reported exactly once, at its confirm-th sample; nothing else is", () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom("black", "moving", "still"), { maxLength: 40 }), fc.integer({ min: 1, max: 4 }), (kinds, confirm) => {
      const judge = new FrameJudge({ confirm });
      let shift = 0;
      let previous = null;
      const verdicts = [];
      const reports = [];
      for (const kind of kinds) {
        if (kind === "moving") shift += 9;
        const stats = lumaStats(kind === "black" ? black() : picture(shift));
        verdicts.push(classify(stats, previous));
        previous = stats.luma;
        reports.push(judge.push(stats));
      }
      const expected = verdicts.map(() => null);
      let runStart = 0;
      for (let i = 0; i < verdicts.length; i += 1) {
        if (i > 0 && verdicts[i] !== verdicts[i - 1]) runStart = i;
        if (verdicts[i] !== "ok" && i - runStart + 1 === confirm) expected[i] = verdicts[i];
      }
      assert.deepEqual(reports, expected);
    }),
  );
});

test("media failure texts map onto the server's fixed reasons", () => {
  assert.equal(failureReason({ reason: "viewer limit reached" }), "viewer-limit");
  assert.equal(failureReason({ reason: "peer connection lost" }), "peer-lost");
  assert.equal(failureReason({ reason: "token expired" }), "token-expired");
  assert.equal(failureReason({ reason: "reconnecting" }), "network");
  assert.equal(failureReason({ name: "NotAllowedError", message: "Permission denied" }), "permission-denied");
  assert.equal(failureReason({ name: "NotFoundError", message: "Requested device not found" }), "device-not-found");
  assert.equal(failureReason("something odd"), "other");
  // media/failure.js codes win over the words
  assert.equal(failureReason({ code: "viewer-limit", reason: "This stream is full right now." }), "viewer-limit");
  assert.equal(failureReason({ code: "service-unreachable", reason: "Can't reach the video service." }), "network");
  assert.equal(failureReason({ code: "camera-refused" }), "permission-denied");
  assert.equal(failureReason({ code: "constructor" }), "other");
  fc.assert(fc.property(fc.anything(), (info) => MEDIA_FAILURE_REASONS.includes(failureReason(info))));
  assert.equal(seconds(1234.5678), 1.235);
  assert.equal(seconds(-5), 0);
  assert.equal(seconds(NaN), 0);
  assert.equal(seconds(1e12), 3600);
});

function harness({ statuses = [], maxEvents = 4, maxQueue = 10, flushMs = 1000 } = {}) {
  const timers = new FakeTimers();
  const batches = [];
  const beacons = [];
  let call = 0;
  const batcher = new TelemetryBatcher({
    page: "watch", timers, maxEvents, maxQueue, flushMs,
    send: async (body) => {
      batches.push({ at: timers.now(), body });
      const status = statuses[call++ % Math.max(1, statuses.length)] ?? 202;
      if (status === "throw") throw new Error("offline");
      return { status, retryAfterMs: status === 429 ? 5000 : undefined };
    },
    beacon: (body) => {
      beacons.push(body);
      return true;
    },
  });
  return { timers, batches, beacons, batcher };
}

test("events are batched: one request per flush interval, not one per event", async () => {
  const { timers, batches, batcher } = harness({ maxEvents: 64 });
  for (let i = 0; i < 5; i += 1) batcher.record({ kind: "rtt", seconds: i });
  assert.equal(batches.length, 0);
  await timers.advance(1000);
  assert.equal(batches.length, 1);
  assert.deepEqual(batches[0].body, { page: "watch", events: [0, 1, 2, 3, 4].map((s) => ({ kind: "rtt", seconds: s })) });
});

test("a 429 makes the batcher wait for Retry-After; what is left goes out as beacons on pagehide", async () => {
  const { timers, batches, beacons, batcher } = harness({ statuses: [429, 202], maxEvents: 2 });
  for (let i = 0; i < 5; i += 1) batcher.record({ kind: "start" });
  await timers.advance(1000);
  assert.equal(batches.length, 1);
  await timers.advance(3000); // still inside the 5 s Retry-After
  assert.equal(batches.length, 1);
  await timers.advance(2500);
  assert.equal(batches.length, 2);
  batcher.close();
  assert.deepEqual(beacons.map((b) => b.events.length), [1]);
  assert.equal(batcher.queue.length, 0);
});

test("Property: batches never exceed maxEvents, the queue never exceeds maxQueue, and every event is sent at most once, in order", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(fc.record({ op: fc.constant("event") }), fc.record({ op: fc.constant("wait"), ms: fc.integer({ min: 0, max: 3000 }) })), { maxLength: 60 }),
      fc.array(fc.constantFrom(202, 429, 503, "throw"), { maxLength: 5 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 12 }),
      fc.boolean(),
      async (ops, statuses, maxEvents, maxQueue, hide) => {
        const { timers, batches, beacons, batcher } = harness({ statuses, maxEvents, maxQueue });
        let n = 0;
        for (const op of ops) {
          if (op.op === "event") batcher.record({ kind: "rtt", seconds: n++ });
          else await timers.advance(op.ms);
          assert.ok(batcher.queue.length <= maxQueue);
        }
        await timers.advance(60_000);
        if (hide) batcher.close();
        const bodies = [...batches.map((b) => b.body), ...beacons];
        for (const body of bodies) assert.ok(body.events.length >= 1 && body.events.length <= maxEvents);
        const ids = bodies.flatMap((b) => b.events.map((e) => e.seconds));
        assert.deepEqual(ids, [...ids].sort((a, b) => a - b)); // order kept
        assert.equal(new Set(ids).size, ids.length); // no event twice
        assert.equal(ids.length + batcher.dropped + batcher.queue.length, n); // nothing vanishes uncounted
        if (hide) assert.equal(batcher.queue.length, 0);
      },
    ),
  );
});
