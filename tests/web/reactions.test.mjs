// ReactionTally: own taps shown at once are not shown again by the aggregate that carries them;
// everyone's counts add up; reactions per minute covers the last 60 s only.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { KINDS, ReactionTally } from "../../src/onair/web/static/client/reactions.js";

test("own taps are taken out of the aggregates that carry them, others' are shown", () => {
  let now = 0;
  const tally = new ReactionTally({ now: () => now });
  tally.tapped("heart");
  tally.tapped("heart");
  assert.deepEqual(tally.received({ heart: 5, fire: 1 }), { heart: 3, fire: 1 });
  assert.equal(tally.total, 6);
  now = 10_000; // an own tap the server dropped (rate limit) expires and hides nothing later
  tally.tapped("clap");
  now = 20_000;
  assert.deepEqual(tally.received({ clap: 2 }), { clap: 2 });
});

test("bad counts and unknown kinds are ignored", () => {
  const tally = new ReactionTally();
  assert.equal(tally.tapped("poop"), false);
  assert.deepEqual(tally.received({ heart: -1, fire: 1.5, poop: 9, wow: "3" }), {});
  assert.deepEqual(tally.received(null), {});
  assert.equal(tally.total, 0);
});

test("property: shown own + shown others = everything received, and totals match", () => {
  fc.assert(fc.property(
    fc.array(fc.oneof(
      fc.record({ tap: fc.constantFrom(...KINDS) }),
      fc.record({ counts: fc.dictionary(fc.constantFrom(...KINDS), fc.integer({ min: 0, max: 50 })) }),
      fc.record({ wait: fc.integer({ min: 0, max: 5000 }) }),
    ), { maxLength: 60 }),
    (steps) => {
      let now = 0;
      const tally = new ReactionTally({ now: () => now, ownHoldMs: 3000 });
      let received = 0, shownOthers = 0;
      for (const step of steps) {
        if (step.tap) tally.tapped(step.tap);
        else if (step.wait !== undefined) now += step.wait;
        else {
          const others = tally.received(step.counts);
          for (const [kind, n] of Object.entries(others)) {
            assert.ok(n > 0 && n <= step.counts[kind]);
            shownOthers += n;
          }
          received += Object.values(step.counts).reduce((a, b) => a + b, 0);
        }
      }
      assert.equal(tally.total, received);
      assert.ok(shownOthers <= received);
    }));
});

test("reactions per minute counts the last 60 s", () => {
  let now = 0;
  const tally = new ReactionTally({ now: () => now });
  tally.received({ heart: 4 });
  now = 30_000;
  tally.received({ fire: 2, wow: 1 });
  assert.equal(tally.perMinute(), 7);
  now = 61_000;
  assert.equal(tally.perMinute(), 3);
  now = 200_000;
  assert.equal(tally.perMinute(), 0);
});
