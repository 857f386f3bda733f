// The local-mode host's viewer slots (LocalWebRtcHost): whatever hellos arrive, from however many
// tabs of however many users, at whatever times, no user holds more than its share, the host never
// holds more than maxViewers connections, a user's hellos cost at most one offer per offerEveryMs,
// and a slot held by an offer nobody answers comes back.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { LocalWebRtcHost } from "../../src/onair/web/static/client/media/local_webrtc.js";
import { peerUser } from "../../src/onair/web/static/client/media/signalling.js";
import { FakeTimers, settle } from "./support/fake_timers.mjs";

class SilentPeerConnection {
  constructor() {
    this.connectionState = "new";
  }
  addTrack() {}
  getSenders() {
    return [];
  }
  async createOffer() {
    return { type: "offer", sdp: "o" };
  }
  async setLocalDescription(d) {
    this.localDescription = d;
  }
  connect() {
    this.connectionState = "connected";
    this.onconnectionstatechange?.();
  }
  close() {
    this.connectionState = "closed";
  }
}

function hostWith({ maxViewers, maxPeersPerUser, connectTimeoutMs, offerEveryMs, timers }) {
  const signaller = {
    sent: [],
    onMessage(handler) {
      this.handler = handler;
    },
    send(to, kind) {
      this.sent.push({ to, kind, at: timers.now() });
      return Promise.resolve("ok");
    },
  };
  const host = new LocalWebRtcHost({ signaller, RTCPeerConnection: SilentPeerConnection, maxViewers, maxPeersPerUser, connectTimeoutMs, offerEveryMs, timers, now: timers.now });
  host.start({ getTracks: () => [{ kind: "video" }] });
  return { host, signaller };
}

const step = fc.oneof(
  fc.record({ kind: fc.constant("hello"), user: fc.integer({ min: 0, max: 3 }), tab: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ kind: fc.constant("connect"), pick: fc.nat() }),
  fc.record({ kind: fc.constant("wait"), ms: fc.integer({ min: 0, max: 12_000 }) }),
);

test("Property: a host's connections stay within maxViewers and each user's share, a user gets one offer a second, unanswered offers expire", async () => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.array(step, { maxLength: 40 }),
    async (maxViewers, maxPeersPerUser, steps) => {
      const timers = new FakeTimers();
      const connectTimeoutMs = 10_000;
      const offerEveryMs = 1_000;
      const { host, signaller } = hostWith({ maxViewers, maxPeersPerUser, connectTimeoutMs, offerEveryMs, timers });
      const offers = () => signaller.sent.filter((m) => m.kind === "offer");
      const offeredAt = (id) => offers().filter((m) => m.to === id).at(-1)?.at;
      for (const s of steps) {
        if (s.kind === "hello") {
          const id = `viewer:u${s.user}:t${s.tab}`;
          const offersBefore = offers().length;
          await signaller.handler({ from: id, kind: "hello" });
          await settle();
          // turned away at once only when the host is full of connections it may not replace
          if (offers().length === offersBefore && signaller.sent.at(-1)?.kind === "full") {
            assert.equal(host.peers.size, maxViewers);
          }
        } else if (s.kind === "connect" && host.peers.size > 0) {
          const peers = [...host.peers.values()];
          peers[s.pick % peers.length].pc.connect();
        } else if (s.kind === "wait") {
          await timers.advance(s.ms);
        }
        await settle();
        assert.ok(host.peers.size <= maxViewers);
        const perUser = new Map();
        for (const [id, peer] of host.peers) {
          perUser.set(peerUser(id), (perUser.get(peerUser(id)) ?? 0) + 1);
          if (peer.pc.connectionState !== "connected") {
            assert.ok(timers.now() - offeredAt(id) < connectTimeoutMs, `${id} kept its slot unanswered`);
          }
        }
        for (const n of perUser.values()) assert.ok(n <= maxPeersPerUser);
      }
      // each user's offers (new connections) are at least offerEveryMs apart
      const byUser = new Map();
      for (const m of offers()) byUser.set(peerUser(m.to), [...(byUser.get(peerUser(m.to)) ?? []), m.at]);
      for (const times of byUser.values()) {
        for (let k = 1; k < times.length; k += 1) assert.ok(times[k] - times[k - 1] >= offerEveryMs, `${times}`);
      }
      // and a hello is answered within offerEveryMs (an offer, or "full"), however recent the last one
      await signaller.handler({ from: "viewer:u0:t9", kind: "hello" });
      await timers.advance(offerEveryMs);
      assert.ok(signaller.sent.some((m) => m.to === "viewer:u0:t9"));
    }), { numRuns: 200 });
});
