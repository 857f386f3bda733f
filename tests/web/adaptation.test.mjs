// Property 9: viewer initialization and adaptation — for any sequence of network-quality readings
// the chosen quality follows the hysteresis rules. The other half of the property, the rendered
// video keeping the source's aspect ratio inside a never-zero player across sizes and rotations,
// is CSS (`object-fit: contain`) and is checked on real pixels in Chromium:
// tests/e2e/test_phone_layout_in_chromium.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Hysteresis } from "../../src/onair/web/static/client/hysteresis.js";
import { VideoQuality, VIDEO_LAYERS, layerForNetworkQuality } from "../../src/onair/web/static/client/video_quality.js";
import { LinkQuality, rttReading } from "../../src/onair/web/static/client/link_quality.js";

/** The hysteresis rules written as plainly as possible, as the reference model. */
function referenceLevels(readings, { levels, downAfter, upAfter }) {
  let level = 0;
  const out = [];
  let run = []; // consecutive readings on the same side of the current level
  for (const r of readings) {
    const side = Math.sign(Math.min(levels - 1, r) - level);
    if (side === 0) run = [];
    else if (run.length && Math.sign(run[0]) !== side) run = [side];
    else run.push(side);
    if (side > 0 && run.length >= downAfter) {
      level += 1;
      run = [];
    } else if (side < 0 && run.length >= upAfter) {
      level -= 1;
      run = [];
    }
    out.push(level);
  }
  return out;
}

test("Property 9: viewer initialization and adaptation — hysteresis matches the reference model", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 4 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 200 }),
      (levels, downAfter, upAfter, readings) => {
        const h = new Hysteresis({ levels, downAfter, upAfter });
        const actual = readings.map((r) => h.push(r));
        assert.deepEqual(actual, referenceLevels(readings, { levels, downAfter, upAfter }));
        // one step at a time, never outside the levels
        actual.forEach((level, i) => {
          const prev = i ? actual[i - 1] : 0;
          assert.ok(Math.abs(level - prev) <= 1);
          assert.ok(level >= 0 && level < levels);
        });
      },
    ),
  );
});

test("Property 9: viewer initialization and adaptation — video layer: unknown readings are ignored, a short blip never changes the layer", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 150 }), (readings) => {
      const vq = new VideoQuality({ downAfter: 2, upAfter: 5 });
      const known = [];
      let previous = vq.layer;
      for (const q of readings) {
        const layer = vq.recordNetworkQuality(q);
        assert.ok(VIDEO_LAYERS.includes(layer));
        const reading = layerForNetworkQuality(q);
        if (reading === null) {
          assert.equal(layer, previous, "an unknown reading changed the layer");
          continue;
        }
        known.push(reading);
        const idx = VIDEO_LAYERS.indexOf(layer);
        const prevIdx = VIDEO_LAYERS.indexOf(previous);
        if (idx > prevIdx) assert.ok(known.slice(-2).every((r) => r > prevIdx), "dropped without two bad readings");
        if (idx < prevIdx) assert.ok(known.slice(-5).length === 5 && known.slice(-5).every((r) => r < prevIdx), "raised without five good readings");
        previous = layer;
      }
    }),
  );
});

test("Property 9: viewer initialization and adaptation — a realtime link going poor drops video before anything else", () => {
  const vq = new VideoQuality();
  assert.equal(vq.recordLinkQuality("poor"), "high");
  assert.equal(vq.recordLinkQuality("poor"), "low");
  vq.recordLinkQuality("poor");
  assert.equal(vq.recordLinkQuality("poor"), "audio");
  for (let i = 0; i < 4; i += 1) assert.equal(vq.recordLinkQuality("good"), "audio");
  assert.equal(vq.recordLinkQuality("good"), "low");
});

test("RTT readings map to good / degraded / poor; a missed heartbeat is poor", () => {
  fc.assert(
    fc.property(fc.option(fc.double({ min: 0, max: 10000, noNaN: true }), { nil: null }), (rtt) => {
      const r = rttReading(rtt, { degradedMs: 300, poorMs: 1000 });
      if (rtt === null || rtt >= 1000) assert.equal(r, 2);
      else if (rtt >= 300) assert.equal(r, 1);
      else assert.equal(r, 0);
    }),
  );
  const link = new LinkQuality({ downAfter: 2, upAfter: 3 });
  assert.equal(link.record(2000), "good");
  assert.equal(link.record(null), "degraded");
});
