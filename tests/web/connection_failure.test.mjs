// Property 11: connection failure handling — backoff delays stay within their bounds and do not
// decrease in expectation, the user gets a notice (with the next try's time and a retry button)
// from the first failure on, a slow retry keeps going once the attempt limit is spent, and a
// manual retry starts over from the first attempt.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Backoff, backoffCeiling, fullJitterDelay } from "../../src/onair/web/static/client/backoff.js";
import { ConnectionManager, ConnState } from "../../src/onair/web/static/client/connection_manager.js";
import { RealtimeSocket } from "../../src/onair/web/static/client/realtime_socket.js";
import { FakeTimers, cyclingRandom } from "./support/fake_timers.mjs";
import { FakeRealtimeServer } from "./support/fake_realtime_server.mjs";

const policyArb = fc
  .record({ baseMs: fc.integer({ min: 1, max: 5000 }), capMs: fc.integer({ min: 1, max: 120000 }), maxAttempts: fc.integer({ min: 1, max: 12 }) })
  .map((p) => ({ ...p, capMs: Math.max(p.capMs, p.baseMs) }));

test("Property 11: connection failure handling — every full-jitter delay lies in [0, min(cap, base·2^n))", () => {
  fc.assert(
    fc.property(policyArb, fc.integer({ min: 0, max: 200 }), fc.double({ min: 0, max: 1, noNaN: true }), (policy, attempt, r) => {
      const delay = fullJitterDelay(attempt, policy, () => r);
      const ceiling = backoffCeiling(attempt, policy);
      assert.ok(delay >= 0 && delay <= ceiling && (delay < ceiling || ceiling === 0 || r >= 1), `${delay} vs ${ceiling}`);
      assert.ok(ceiling <= policy.capMs);
      assert.ok(Number.isInteger(delay));
    }),
  );
});

test("Property 11: connection failure handling — the expected delay (ceiling / 2) never decreases and reaches the cap", () => {
  fc.assert(
    fc.property(policyArb, (policy) => {
      let previous = -1;
      for (let n = 0; n < 64; n += 1) {
        const ceiling = backoffCeiling(n, policy);
        assert.ok(ceiling >= previous, `attempt ${n}: ${ceiling} < ${previous}`);
        previous = ceiling;
      }
      assert.equal(previous, policy.capMs);
    }),
  );
});

test("Property 11: connection failure handling — sampled mean delay per attempt follows the ceiling", () => {
  // An empirical check of "non-decreasing in expectation" with the real Math.random: the sample
  // mean for attempt n+1 is not meaningfully below that of attempt n.
  const policy = { baseMs: 100, capMs: 3000, maxAttempts: 10 };
  const means = [];
  for (let n = 0; n < 8; n += 1) {
    let sum = 0;
    for (let i = 0; i < 4000; i += 1) sum += fullJitterDelay(n, policy);
    means.push(sum / 4000);
  }
  for (let n = 1; n < means.length; n += 1) assert.ok(means[n] >= means[n - 1] * 0.9, JSON.stringify(means));
  assert.ok(Math.abs(means[7] - 1500) < 150, JSON.stringify(means));
});

test("Property 11: connection failure handling — Backoff counts attempts, is exhausted at the limit, resets", () => {
  fc.assert(
    fc.property(policyArb, fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 1, maxLength: 20 }), (policy, rs) => {
      const backoff = new Backoff(policy, cyclingRandom(rs));
      for (let n = 0; n < policy.maxAttempts; n += 1) {
        assert.equal(backoff.exhausted(), false);
        const delay = backoff.next();
        assert.ok(delay < backoffCeiling(n, policy) || backoffCeiling(n, policy) === 0);
      }
      assert.equal(backoff.exhausted(), true);
      backoff.reset();
      assert.equal(backoff.exhausted(), false);
      assert.equal(backoff.attempt, 0);
    }),
  );
});

test("Property 11: connection failure handling — a manager facing a dead server backs off within bounds, says so from the first failure, retries slowly after the limit, and a manual retry starts over", async () => {
  await fc.assert(
    fc.asyncProperty(
      policyArb.map((p) => ({ ...p, baseMs: Math.min(p.baseMs, 2000), capMs: Math.min(p.capMs, 20000) })),
      fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 1, maxLength: 10 }),
      fc.boolean(),
      async (policy, rs, serverBackAfterRetry) => {
        const timers = new FakeTimers();
        const server = new FakeRealtimeServer(timers);
        server.up = false;
        const socket = new RealtimeSocket({ url: "ws://onair.test/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
        const slowRetryMs = 60_000;
        const manager = new ConnectionManager({ socket, timers, now: timers.now, random: cyclingRandom(rs), policy: { ...policy, connectTimeoutMs: 1000, slowRetryMs } });
        const states = [];
        const notices = [];
        let attemptsWhenFailed = null;
        manager.on("state", (s) => {
          states.push(s);
          if (s === ConnState.FAILED && attemptsWhenFailed === null) attemptsWhenFailed = server.connectAttempts;
        });
        manager.on("notice", (n) => {
          notices.push(n);
          if (n) assert.ok(n.retryAt >= timers.now() && n.retryAt <= timers.now() + Math.max(slowRetryMs, policy.capMs), "the next try is announced");
        });
        manager.start();
        // enough virtual time for every retry at the cap
        await timers.advance((policy.maxAttempts + 2) * (policy.capMs + 2000));
        assert.equal(manager.state, ConnState.FAILED);
        assert.equal(manager.delays.length, policy.maxAttempts);
        manager.delays.forEach((d, n) => assert.ok(d >= 0 && (d < backoffCeiling(n, policy) || backoffCeiling(n, policy) === 0), `delay ${n}=${d}`));
        assert.equal(attemptsWhenFailed, policy.maxAttempts + 1, "one first try plus maxAttempts retries");
        assert.ok(manager.notice && manager.notice.attempts === policy.maxAttempts && manager.notice.final);
        const finalAt = notices.findIndex((n) => n?.final);
        assert.equal(finalAt, policy.maxAttempts, "a notice for every failure, from the first one on");
        assert.ok(notices.slice(0, finalAt).every((n) => n && !n.final));
        // failed is not the end: one try every slowRetryMs, still failed, a fresh countdown each time
        const before = server.connectAttempts;
        await timers.advance(10 * 60 * 1000);
        const slowTries = server.connectAttempts - before;
        assert.ok(slowTries >= 9 && slowTries <= 10, `${slowTries} slow tries in 10 minutes`);
        assert.equal(manager.state, ConnState.FAILED);
        assert.equal(manager.delays.length, policy.maxAttempts, "slow tries do not restart the backoff");
        const attempts = server.connectAttempts;

        if (serverBackAfterRetry) server.revive();
        manager.retry();
        assert.equal(manager.notice, null);
        assert.equal(manager.backoff.attempt, 0);
        assert.equal(server.connectAttempts, attempts + 1, "retry connects at once");
        await timers.advance(50);
        if (serverBackAfterRetry) {
          assert.equal(manager.state, ConnState.CONNECTED);
        } else {
          assert.ok([ConnState.RECONNECTING, ConnState.FAILED].includes(manager.state));
          const first = manager.delays[policy.maxAttempts];
          assert.ok(first < backoffCeiling(0, policy) || backoffCeiling(0, policy) === 0, "the retry starts again at attempt 0");
        }
        manager.stop();
      },
    ),
    { numRuns: 60 },
  );
});

test("a heartbeat that is not answered closes the link and reconnects; slow replies degrade quality", async () => {
  const timers = new FakeTimers();
  const server = new FakeRealtimeServer(timers);
  const socket = new RealtimeSocket({ url: "ws://onair.test/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
  const manager = new ConnectionManager({ socket, timers, random: () => 0.5, policy: { heartbeatMs: 1000, heartbeatTimeoutMs: 2000, rtt: { degradedMs: 300, poorMs: 1000 } } });
  manager.start();
  await timers.advance(100);
  assert.equal(manager.state, ConnState.CONNECTED);
  server.heartbeatDelayMs = 500;
  await timers.advance(4000);
  assert.equal(manager.state, ConnState.DEGRADED);
  assert.equal(manager.quality, "degraded");
  server.heartbeatDelayMs = 0;
  await timers.advance(6000);
  assert.equal(manager.state, ConnState.CONNECTED);
  assert.equal(manager.quality, "good");
  server.answerHeartbeats = false;
  const before = server.connectAttempts;
  await timers.advance(3500);
  assert.ok([ConnState.RECONNECTING, ConnState.CONNECTED].includes(manager.state));
  server.answerHeartbeats = true;
  await timers.advance(5000);
  assert.equal(manager.state, ConnState.CONNECTED);
  assert.ok(server.connectAttempts > before);
  manager.stop();
});

test("a WebSocket constructor that throws counts as a failed attempt, not a crash", async () => {
  const timers = new FakeTimers();
  let tries = 0;
  class Refusing {
    constructor() {
      tries += 1;
      throw new SyntaxError("The URL is invalid");
    }
  }
  const socket = new RealtimeSocket({ url: "ws://x/realtime/v1", apikey: "anon", WebSocket: Refusing, timers, now: timers.now });
  const manager = new ConnectionManager({ socket, timers, random: () => 0.5, policy: { baseMs: 10, capMs: 20, maxAttempts: 3 } });
  manager.start();
  await timers.advance(1000);
  assert.equal(manager.state, ConnState.FAILED);
  assert.equal(tries, 4);
});

/** A manager on virtual time against the fake server, in a fake browser that is on- or offline. */
function managerInBrowser({ onLine, policy }) {
  const timers = new FakeTimers();
  const server = new FakeRealtimeServer(timers);
  const socket = new RealtimeSocket({ url: "ws://onair.test/realtime/v1", apikey: "anon", WebSocket: server.WebSocket, timers, now: timers.now });
  const env = new EventTarget();
  env.navigator = { onLine };
  const manager = new ConnectionManager({ socket, timers, now: timers.now, env, random: () => 0.5, policy });
  return { timers, server, env, manager };
}

test("offline: the browser's offline event drops the link at once, says so, and online reconnects at once", async () => {
  const { timers, server, env, manager } = managerInBrowser({ onLine: true, policy: { slowRetryMs: 30_000, heartbeatMs: 15_000 } });
  manager.start();
  await timers.advance(100);
  assert.equal(manager.state, ConnState.CONNECTED);
  env.navigator.onLine = false;
  env.dispatchEvent(new Event("offline"));
  assert.equal(manager.state, ConnState.OFFLINE, "no waiting for a heartbeat timeout");
  assert.equal(manager.online, false);
  assert.match(manager.notice.message, /offline/);
  assert.equal(manager.notice.retryAt, timers.now() + 30_000);
  server.up = false;
  const before = server.connectAttempts;
  await timers.advance(29_000);
  assert.equal(server.connectAttempts, before, "no hammering while offline");
  await timers.advance(2_000);
  assert.equal(server.connectAttempts, before + 1, "a slow try in case 'online' never comes");
  assert.equal(manager.state, ConnState.OFFLINE);
  server.revive();
  env.navigator.onLine = true;
  env.dispatchEvent(new Event("online"));
  await timers.advance(50);
  assert.equal(manager.state, ConnState.CONNECTED);
  assert.equal(manager.notice, null);
  manager.stop();
});

test("offline at start: no connection attempt until the network is back", async () => {
  const { timers, server, env, manager } = managerInBrowser({ onLine: false, policy: { slowRetryMs: 30_000 } });
  manager.start();
  assert.equal(manager.state, ConnState.OFFLINE);
  assert.equal(server.connectAttempts, 0);
  env.navigator.onLine = true;
  env.dispatchEvent(new Event("online"));
  await timers.advance(50);
  assert.equal(manager.state, ConnState.CONNECTED);
  manager.stop();
});

test("suspect(): a failed REST call probes the link; an unanswered probe counts as lost within probeTimeoutMs", async () => {
  const { timers, server, manager } = managerInBrowser({ onLine: true, policy: { probeTimeoutMs: 1000, heartbeatMs: 15_000, heartbeatTimeoutMs: 10_000 } });
  manager.start();
  await timers.advance(100);
  manager.suspect();
  await timers.advance(1500);
  assert.equal(manager.state, ConnState.CONNECTED, "an answered probe changes nothing");
  server.answerHeartbeats = false;
  manager.suspect();
  manager.suspect(); // one probe at a time
  await timers.advance(1001);
  assert.equal(manager.state, ConnState.RECONNECTING);
  assert.equal(manager.notice.reason, "no answer from the server");
  assert.ok(manager.notice.retryAt > timers.now());
  manager.stop();
});
