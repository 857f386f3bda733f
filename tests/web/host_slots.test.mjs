// The local-mode host's viewer slots (LocalWebRtcHost): whatever hellos arrive, from however many
// tabs of however many users, at whatever times, no user holds more than its share, the host never
// holds more than maxViewers connections, and a slot held by an offer nobody answers comes back.
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

function hostWith({ maxViewers, maxPeersPerUser, connectTimeoutMs, timers }) {
  const signaller = {
    sent: [],
    onMessage(handler) {
      this.handler = handler;
    },
    send(to, kind) {
      this.sent.push({ to, kind });
      return Promise.resolve("ok");
    },
  };
  const host = new LocalWebRtcHost({ signaller, RTCPeerConnection: SilentPeerConnection, maxViewers, maxPeersPerUser, connectTimeoutMs, timers });
  host.start({ getTracks: () => [{ kind: "video" }] });
  return { host, signaller };
}

const step = fc.oneof(
  fc.record({ kind: fc.constant("hello"), user: fc.integer({ min: 0, max: 3 }), tab: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ kind: fc.constant("connect"), pick: fc.nat() }),
  fc.record({ kind: fc.constant("wait"), ms: fc.integer({ min: 0, max: 12_000 }) }),
);

test("Property: a host's connections stay within maxViewers and each user's share; unanswered offers expire", async () => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.array(step, { maxLength: 40 }),
    async (maxViewers, maxPeersPerUser, steps) => {
      const timers = new FakeTimers();
      const connectTimeoutMs = 10_000;
      const { host, signaller } = hostWith({ maxViewers, maxPeersPerUser, connectTimeoutMs, timers });
      const offeredAt = new Map(); // peer -> time of the offer its connection is from
      for (const s of steps) {
        if (s.kind === "hello") {
          const id = `viewer:u${s.user}:t${s.tab}`;
          const before = host.peers.get(id);
          await signaller.handler({ from: id, kind: "hello" });
          if (host.peers.get(id) && host.peers.get(id) !== before) offeredAt.set(id, timers.now());
          const mine = [...host.peers.keys()].filter((p) => peerUser(p) === `u${s.user}`).length;
          // a user's hello is turned away only when the host is full of other users' connections
          if (!host.peers.has(id)) assert.equal(host.peers.size, maxViewers);
          assert.ok(mine <= maxPeersPerUser);
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
            assert.ok(timers.now() - offeredAt.get(id) < connectTimeoutMs, `${id} kept its slot unanswered`);
          }
        }
        for (const n of perUser.values()) assert.ok(n <= maxPeersPerUser);
      }
    }), { numRuns: 200 });
});
