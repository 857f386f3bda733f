import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { RefreshTimer, jwtExpiry } from "../../src/onair/web/static/client/token_refresh.js";
import { FakeTimers } from "./support/fake_timers.mjs";

test("refresh is due at refresh_after, never later than margin before expiry, never in the past", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1e7 }), fc.integer({ min: 0, max: 1e7 }), fc.option(fc.integer({ min: 0, max: 2e7 }), { nil: undefined }), fc.integer({ min: 0, max: 60000 }), (now, life, refreshAfter, margin) => {
      const expiresAt = now + life;
      const due = RefreshTimer.dueTime({ expiresAt, refreshAfter }, margin, now);
      assert.ok(due >= now);
      assert.ok(due <= Math.max(now, expiresAt - margin));
      if (refreshAfter !== undefined && refreshAfter >= now && refreshAfter <= expiresAt - margin) assert.equal(due, refreshAfter);
    }),
  );
});

test("credentials are refreshed before expiry again and again; failures retry until expiry, then onExpired", async () => {
  const timers = new FakeTimers(0);
  let fail = false;
  const refreshedAt = [];
  let expired = 0;
  const timer = new RefreshTimer({
    name: "rtc",
    timers,
    now: timers.now,
    random: () => 0.5,
    marginMs: 30000,
    refresh: async () => {
      if (fail) throw new Error("offline");
      refreshedAt.push(timers.now());
      return { expiresAt: timers.now() + 3600_000, refreshAfter: timers.now() + 2880_000 };
    },
    onExpired: () => expired++,
  });
  timer.schedule({ expiresAt: 3600_000, refreshAfter: 2880_000 });
  await timers.advance(3 * 3600_000);
  assert.deepEqual(refreshedAt.slice(0, 3), [2880_000, 5760_000, 8640_000]);
  fail = true;
  await timers.advance(3600_000);
  assert.equal(expired, 1);
  assert.equal(timers.pending, 0, "no timer left after giving up");
});

test("jwtExpiry reads exp; garbage gives null", () => {
  const payload = Buffer.from(JSON.stringify({ exp: 2000000000, sub: "u" })).toString("base64url");
  assert.equal(jwtExpiry(`x.${payload}.y`), 2000000000 * 1000);
  assert.equal(jwtExpiry("nope"), null);
});
