// Local WebRTC mode (the default when Agora is not configured): the studio's browser sends its
// camera and microphone to every viewer over one RTCPeerConnection each; offers, answers and ICE
// candidates travel over the stream's private signalling channel (signalling.js).
//
// Only hosts make offers, so there is no glare. A viewer says "hello" to every host until one
// sends video (the host may not be live yet, or may have restarted); a host answers every hello
// with a fresh connection for that viewer, up to `maxViewers`. The seller and each co-host on
// camera are hosts: a viewer keeps one connection per host, and a host that comes on air later
// announces itself ("host-ready") and is asked directly, so the others are not disturbed. ICE
// servers are configurable; none are needed on one host (host candidates on loopback).

import { Emitter, realTimers } from "../emitter.js";
import { MediaStatus } from "./interface.js";
import { Failure, failureText } from "./failure.js";
import { EVERYONE, HOST, peerUser } from "./signalling.js";

/** What each layer a viewer asks for means for the encoding sent to that viewer alone. */
export const LAYER_ENCODINGS = Object.freeze({
  high: { scaleResolutionDownBy: 1, maxBitrate: null, active: true },
  low: { scaleResolutionDownBy: 4, maxBitrate: 250_000, active: true },
  audio: { scaleResolutionDownBy: 1, maxBitrate: null, active: false },
});

export class LocalWebRtcViewer extends Emitter {
  constructor({ signaller, router, streamId, RTCPeerConnection = globalThis.RTCPeerConnection, iceServers = [], timers, helloEveryMs = 2000, disconnectGraceMs = 4000 }) {
    super();
    this.signaller = signaller;
    this.router = router;
    this.streamId = String(streamId);
    this.RTCPeerConnection = RTCPeerConnection;
    this.iceServers = iceServers;
    this.timers = timers;
    this.helloEveryMs = helloEveryMs;
    this.disconnectGraceMs = disconnectGraceMs;
    this.status = MediaStatus.CONNECTING;
    this.layer = "high";
    // One connection per host: the seller and each co-host on camera offer separately.
    this.peers = new Map(); // host peer id -> {pc, pendingIce, graceTimer}
    this._helloTimer = null;
    this._stopped = true;
    this._unsubscribe = signaller.onMessage((m) => this._onSignal(m));
  }

  /** The first host's connection (the seller's, usually); null when there is none. */
  get pc() {
    return this.peers.values().next().value?.pc ?? null;
  }

  async start() {
    this._stopped = false;
    this._sayHello();
  }

  async stop() {
    this._stopped = true;
    if (this._helloTimer !== null) this.timers.clearTimeout(this._helloTimer);
    this._helloTimer = null;
    for (const hostId of [...this.peers.keys()]) {
      this.signaller.send(hostId, "bye");
      this._closePeer(hostId);
    }
    this._unsubscribe();
  }

  /** Ask every host to send this layer to us (LAYER_ENCODINGS): the sender scales down for this
   * viewer only; "audio" stops its video. */
  setLayer(layer) {
    if (!LAYER_ENCODINGS[layer] || layer === this.layer) return;
    this.layer = layer;
    for (const hostId of this.peers.keys()) this.signaller.send(hostId, "layer", { layer });
    this.emit("layer", layer);
  }

  /** Call when the signalling channel (re)joined: ask for media again if we have none. */
  channelJoined() {
    if (!this._stopped && (this.status !== MediaStatus.PLAYING || this.peers.size === 0)) this._sayHello(true);
  }

  /** Say hello to every host until one sends video; a host that appears later announces itself. */
  _sayHello(now = false) {
    if (this._stopped) return;
    if (this._helloTimer !== null) this.timers.clearTimeout(this._helloTimer);
    const hello = () => {
      this._helloTimer = null;
      if (this._stopped || (this.peers.size && this.status === MediaStatus.PLAYING)) return;
      this.signaller.send(HOST, "hello");
      this._helloTimer = this.timers.setTimeout(() => {
        if (!this.peers.size && this.status === MediaStatus.CONNECTING) this._setStatus(MediaStatus.NO_PUBLISHER);
        hello();
      }, this.helloEveryMs);
    };
    if (now) hello();
    else this._helloTimer = this.timers.setTimeout(hello, 0);
  }

  async _onSignal(message) {
    if (this._stopped) return;
    const hostId = message.from;
    switch (message.kind) {
      case "offer":
        await this._acceptOffer(message);
        break;
      case "ice": {
        const peer = this.peers.get(hostId);
        if (!peer) return;
        if (peer.pc.remoteDescription) await this._addIce(peer.pc, message.data);
        else peer.pendingIce.push(message.data);
        break;
      }
      case "host-ready":
        // a host (back) on air: ask it directly, so hosts already sending to us are not disturbed
        if (this.peers.get(hostId)?.pc.connectionState !== "connected") this.signaller.send(hostId, "hello");
        break;
      case "bye":
        if (this.peers.has(hostId)) {
          this._closePeer(hostId);
          if (!this.router.has("video")) this._setStatus(MediaStatus.NO_PUBLISHER);
          if (!this.peers.size) this._sayHello();
        }
        break;
      case "full":
        // only matters when no other host sends to us
        if (!this.peers.size) {
          // the hello loop goes on, so a place that frees up is taken without the user's help
          this._setStatus(MediaStatus.FAILED, { reason: failureText(Failure.VIEWER_LIMIT), code: Failure.VIEWER_LIMIT });
        }
        break;
      default:
        break;
    }
  }

  async _acceptOffer(message) {
    const hostId = message.from;
    this._closePeer(hostId);
    const pc = new this.RTCPeerConnection({ iceServers: this.iceServers });
    const peer = { pc, pendingIce: [], graceTimer: null };
    this.peers.set(hostId, peer);
    const current = () => this.peers.get(hostId) === peer;
    pc.ontrack = (event) => {
      if (!current()) return;
      // Tracks are tagged with the stream of the session that received them (Property 4).
      this.router.publish({ streamId: this.streamId, publisherId: hostId, kind: event.track.kind, track: event.track, streams: event.streams });
      if (event.track.kind === "video") this._setStatus(MediaStatus.PLAYING);
    };
    pc.onicecandidate = (event) => {
      if (current() && event.candidate) this.signaller.send(hostId, "ice", toJson(event.candidate));
    };
    pc.onconnectionstatechange = () => current() && this._onConnectionState(hostId, peer);
    try {
      await pc.setRemoteDescription(message.data);
      for (const candidate of peer.pendingIce.splice(0)) await this._addIce(pc, candidate);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await this.signaller.send(hostId, "answer", toJson(pc.localDescription ?? answer));
      if (this.layer !== "high") this.signaller.send(hostId, "layer", { layer: this.layer });
    } catch (err) {
      if (!current()) return;
      this._closePeer(hostId);
      if (!this.router.has("video")) this._setStatus(MediaStatus.FAILED, { reason: String(err?.message ?? err) });
      this._sayHello();
    }
  }

  _onConnectionState(hostId, peer) {
    const { pc } = peer;
    const state = pc.connectionState;
    if (state === "connected") {
      if (peer.graceTimer !== null) this.timers.clearTimeout(peer.graceTimer);
      peer.graceTimer = null;
      if (this.router.has("video")) this._setStatus(MediaStatus.PLAYING);
    } else if (state === "disconnected") {
      // often recovers by itself within seconds; give it a grace period before renegotiating
      if (peer.graceTimer === null) {
        peer.graceTimer = this.timers.setTimeout(() => {
          peer.graceTimer = null;
          if (this.peers.get(hostId) === peer && pc.connectionState !== "connected") this._restart(hostId);
        }, this.disconnectGraceMs);
      }
    } else if (state === "failed" || state === "closed") {
      this._restart(hostId);
    }
  }

  _restart(hostId) {
    this._closePeer(hostId);
    if (this.router.has("video")) {
      this.signaller.send(hostId, "hello"); // another host still sends: ask this one alone
    } else {
      this._setStatus(MediaStatus.FAILED, { reason: "peer connection lost" });
      this._sayHello(true);
    }
  }

  async _addIce(pc, candidate) {
    try {
      await pc.addIceCandidate(candidate);
    } catch {
      // a candidate for an old generation; harmless
    }
  }

  _closePeer(hostId) {
    const peer = this.peers.get(hostId);
    if (!peer) return;
    this.peers.delete(hostId);
    if (peer.graceTimer !== null) this.timers.clearTimeout(peer.graceTimer);
    const { pc } = peer;
    pc.ontrack = pc.onicecandidate = pc.onconnectionstatechange = null;
    try {
      pc.close();
    } catch {
      // already closed
    }
    this.router.unpublish({ streamId: this.streamId, publisherId: hostId });
  }

  _setStatus(status, info = {}) {
    if (status === this.status && !info.reason) return;
    this.status = status;
    this.emit("status", status, info);
  }
}

// A host's viewer slots are its own upload bandwidth, so no one viewer may hold them: one user
// gets at most `maxPeersPerUser` connections (a further tab of theirs replaces their oldest, as a
// reload does), and a connection not up within `connectTimeoutMs` of the offer (a hello that
// never answers) gives its slot back. Each offer costs the host a new RTCPeerConnection, so a
// user gets one at most every `offerEveryMs`: a sooner hello waits for its turn (only the latest
// of a user's waiting hellos is kept), so a reload or "Try again" is answered within that time.
// The server vouches for the user part of a peer id (realtime/signals.py), the tab part is the
// client's choice.
export class LocalWebRtcHost extends Emitter {
  constructor({ signaller, RTCPeerConnection = globalThis.RTCPeerConnection, iceServers = [], maxViewers = 8,
                maxPeersPerUser = 2, connectTimeoutMs = 20_000, offerEveryMs = 1_000, timers = realTimers,
                now = () => Date.now() }) {
    super();
    this.signaller = signaller;
    this.RTCPeerConnection = RTCPeerConnection;
    this.iceServers = iceServers;
    this.maxViewers = maxViewers;
    this.maxPeersPerUser = maxPeersPerUser;
    this.connectTimeoutMs = connectTimeoutMs;
    this.offerEveryMs = offerEveryMs;
    this.timers = timers;
    this.now = now;
    this.lastOfferTo = new Map(); // user -> time of their latest offer (pruned as it ages)
    this.waitingHello = new Map(); // user -> {id, timer}: their latest hello that came too soon
    this.peers = new Map(); // viewer peer id -> {pc, pendingIce, layer, deadline}, oldest first
    this.stream = null;
    this._live = false;
    signaller.onMessage((m) => this._onSignal(m));
  }

  /** Start answering viewers with the tracks of `stream` (a MediaStream). */
  start(stream) {
    this.stream = stream;
    this._live = true;
    this.announce();
  }

  /** Tell viewers waiting for us that we are (back) here; call after every channel (re)join. */
  announce() {
    if (this._live) this.signaller.send(EVERYONE, "host-ready");
  }

  /** Swap camera or microphone without renegotiating. */
  async setTracks(stream) {
    this.stream = stream;
    for (const { pc } of this.peers.values()) {
      for (const sender of pc.getSenders()) {
        const next = stream.getTracks().find((t) => t.kind === sender.track?.kind);
        if (next) await sender.replaceTrack(next);
      }
    }
  }

  /** Stop sending (pause or end): viewers get "bye" and wait for the next host-ready. */
  stop() {
    this._live = false;
    for (const { timer } of this.waitingHello.values()) this.timers.clearTimeout(timer);
    this.waitingHello.clear();
    for (const id of [...this.peers.keys()]) {
      this.signaller.send(id, "bye");
      this._drop(id);
    }
  }

  get viewerCount() {
    return [...this.peers.values()].filter((p) => p.pc.connectionState === "connected").length;
  }

  async _onSignal(message) {
    const id = message.from;
    switch (message.kind) {
      case "hello":
        if (!this._live || !this.stream || !this._mayOfferTo(id)) return;
        if (!this.peers.has(id)) this._makeRoomFor(id);
        if (!this.peers.has(id) && this.peers.size >= this.maxViewers) {
          this.signaller.send(id, "full");
          return;
        }
        await this._offer(id);
        break;
      case "answer": {
        const peer = this.peers.get(id);
        if (!peer) return;
        try {
          await peer.pc.setRemoteDescription(message.data);
          for (const candidate of peer.pendingIce.splice(0)) await peer.pc.addIceCandidate(candidate).catch(() => {});
        } catch {
          this._drop(id);
        }
        break;
      }
      case "ice": {
        const peer = this.peers.get(id);
        if (!peer) return;
        if (peer.pc.remoteDescription) await peer.pc.addIceCandidate(message.data).catch(() => {});
        else peer.pendingIce.push(message.data);
        break;
      }
      case "bye": {
        this._drop(id);
        const waiting = this.waitingHello.get(peerUser(id));
        if (waiting?.id === id) {
          this.timers.clearTimeout(waiting.timer);
          this.waitingHello.delete(peerUser(id));
        }
        break;
      }
      case "layer": {
        const peer = this.peers.get(id);
        const layer = message.data?.layer;
        if (!peer || !LAYER_ENCODINGS[layer]) return;
        peer.layer = layer;
        await this._applyLayer(peer);
        break;
      }
      default:
        break;
    }
  }

  /** This viewer's video encoding: scaled down and capped for "low", off for "audio". */
  async _applyLayer(peer) {
    const sender = peer.pc.getSenders().find((s) => s.track?.kind === "video");
    if (!sender?.getParameters) return;
    const params = sender.getParameters();
    if (!params.encodings?.length) return; // not negotiated yet: applied again on "connected"
    const { scaleResolutionDownBy, maxBitrate, active } = LAYER_ENCODINGS[peer.layer];
    params.encodings[0] = { ...params.encodings[0], scaleResolutionDownBy, active };
    if (maxBitrate) params.encodings[0].maxBitrate = maxBitrate;
    else delete params.encodings[0].maxBitrate;
    try {
      await sender.setParameters(params);
      this.emit("viewer-layer", peer.layer);
    } catch {
      // the sender renegotiated meanwhile; the next "layer" message or connection applies it
    }
  }

  /** True when `id`'s user may have an offer now; else its hello waits for the user's turn. */
  _mayOfferTo(id) {
    const user = peerUser(id);
    const now = this.now();
    for (const [other, at] of this.lastOfferTo) {
      if (now - at < this.offerEveryMs) break; // oldest first: the rest are younger
      this.lastOfferTo.delete(other);
    }
    const last = this.lastOfferTo.get(user);
    if (last === undefined) {
      this.lastOfferTo.set(user, now);
      return true;
    }
    const waiting = this.waitingHello.get(user);
    if (waiting) waiting.id = id;
    else {
      const timer = this.timers.setTimeout(() => {
        const latest = this.waitingHello.get(user);
        this.waitingHello.delete(user);
        if (latest) this._onSignal({ from: latest.id, kind: "hello" });
      }, last + this.offerEveryMs - now);
      this.waitingHello.set(user, { id, timer });
    }
    return false;
  }

  /** Drop the oldest connections of `id`'s user past their share, before `id` gets one. */
  _makeRoomFor(id) {
    const user = peerUser(id);
    const theirs = [...this.peers.keys()].filter((other) => peerUser(other) === user);
    for (const other of theirs.slice(0, Math.max(0, theirs.length - this.maxPeersPerUser + 1))) {
      this.signaller.send(other, "bye");
      this._drop(other);
    }
  }

  async _offer(id) {
    this._drop(id); // a repeated hello means the viewer lost us: start over
    const pc = new this.RTCPeerConnection({ iceServers: this.iceServers });
    const peer = { pc, pendingIce: [], layer: "high", deadline: null };
    this.peers.set(id, peer);
    peer.deadline = this.timers.setTimeout(() => {
      if (this.peers.get(id) === peer && pc.connectionState !== "connected") this._drop(id);
    }, this.connectTimeoutMs);
    for (const track of this.stream.getTracks()) pc.addTrack(track, this.stream);
    pc.onicecandidate = (event) => {
      if (this.peers.get(id) === peer && event.candidate) this.signaller.send(id, "ice", toJson(event.candidate));
    };
    pc.onconnectionstatechange = () => {
      if (this.peers.get(id) !== peer) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this._drop(id);
      else if (pc.connectionState === "connected" && peer.layer !== "high") this._applyLayer(peer);
      this.emit("viewers", this.viewerCount);
    };
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await this.signaller.send(id, "offer", toJson(pc.localDescription ?? offer));
    } catch {
      this._drop(id);
    }
  }

  _drop(id) {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.peers.delete(id);
    this.timers.clearTimeout(peer.deadline);
    peer.pc.onicecandidate = peer.pc.onconnectionstatechange = null;
    try {
      peer.pc.close();
    } catch {
      // already closed
    }
    this.emit("viewers", this.viewerCount);
  }
}

function toJson(value) {
  return typeof value?.toJSON === "function" ? value.toJSON() : { ...value };
}
