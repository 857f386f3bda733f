// Local WebRTC mode (the default when Agora is not configured): the studio's browser sends its
// camera and microphone to every viewer over one RTCPeerConnection each; offers, answers and ICE
// candidates travel over the stream's private signalling channel (signalling.js).
//
// Only the host makes offers, so there is no glare. A viewer says "hello" until it gets an offer
// (the host may not be live yet, or may have restarted); the host answers every hello with a
// fresh connection for that viewer, up to `maxViewers`. ICE servers are configurable; none are
// needed on one host (host candidates on loopback).

import { Emitter } from "../emitter.js";
import { MediaStatus } from "./interface.js";
import { Failure, failureText } from "./failure.js";
import { EVERYONE, HOST } from "./signalling.js";

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
    this.pc = null;
    this.hostId = null;
    this._pendingIce = [];
    this._helloTimer = null;
    this._graceTimer = null;
    this._stopped = true;
    this._unsubscribe = signaller.onMessage((m) => this._onSignal(m));
  }

  async start() {
    this._stopped = false;
    this._sayHello();
  }

  async stop() {
    this._stopped = true;
    this._clearTimers();
    if (this.hostId) this.signaller.send(this.hostId, "bye");
    this._closePeer();
    this._unsubscribe();
  }

  /** The local mode sends one layer; "audio" stops rendering video to save the decoder. */
  setLayer(layer) {
    this.emit("layer", layer === "audio" ? "audio" : "high");
  }

  /** Call when the signalling channel (re)joined: ask for media again if we have none. */
  channelJoined() {
    if (!this._stopped && (this.status !== MediaStatus.PLAYING || !this.pc)) this._sayHello(true);
  }

  _sayHello(now = false) {
    if (this._stopped) return;
    if (this._helloTimer !== null) this.timers.clearTimeout(this._helloTimer);
    const hello = () => {
      this._helloTimer = null;
      if (this._stopped || (this.pc && this.status === MediaStatus.PLAYING)) return;
      this.signaller.send(HOST, "hello");
      this._helloTimer = this.timers.setTimeout(() => {
        if (!this.pc && this.status === MediaStatus.CONNECTING) this._setStatus(MediaStatus.NO_PUBLISHER);
        hello();
      }, this.helloEveryMs);
    };
    if (now) hello();
    else this._helloTimer = this.timers.setTimeout(hello, 0);
  }

  async _onSignal(message) {
    if (this._stopped) return;
    switch (message.kind) {
      case "offer":
        await this._acceptOffer(message);
        break;
      case "ice":
        if (message.from !== this.hostId || !this.pc) return;
        if (this.pc.remoteDescription) await this._addIce(message.data);
        else this._pendingIce.push(message.data);
        break;
      case "host-ready":
        if (!this.pc || this.status !== MediaStatus.PLAYING) this._sayHello(true);
        break;
      case "bye":
        if (message.from === this.hostId) {
          this._closePeer();
          this._setStatus(MediaStatus.NO_PUBLISHER);
          this._sayHello();
        }
        break;
      case "full":
        // the hello loop goes on, so a place that frees up is taken without the user's help
        this._setStatus(MediaStatus.FAILED, { reason: failureText(Failure.VIEWER_LIMIT), code: Failure.VIEWER_LIMIT });
        break;
      default:
        break;
    }
  }

  async _acceptOffer(message) {
    this._closePeer();
    this.hostId = message.from;
    const pc = new this.RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    pc.ontrack = (event) => {
      if (pc !== this.pc) return;
      // Tracks are tagged with the stream of the session that received them (Property 4).
      this.router.publish({ streamId: this.streamId, publisherId: message.from, kind: event.track.kind, track: event.track, streams: event.streams });
      if (event.track.kind === "video") this._setStatus(MediaStatus.PLAYING);
    };
    pc.onicecandidate = (event) => {
      if (pc === this.pc && event.candidate) this.signaller.send(message.from, "ice", toJson(event.candidate));
    };
    pc.onconnectionstatechange = () => this._onConnectionState(pc);
    try {
      await pc.setRemoteDescription(message.data);
      for (const candidate of this._pendingIce.splice(0)) await this._addIce(candidate);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await this.signaller.send(message.from, "answer", toJson(pc.localDescription ?? answer));
    } catch (err) {
      if (pc !== this.pc) return;
      this._closePeer();
      this._setStatus(MediaStatus.FAILED, { reason: String(err?.message ?? err) });
      this._sayHello();
    }
  }

  _onConnectionState(pc) {
    if (pc !== this.pc) return;
    const state = pc.connectionState;
    if (state === "connected") {
      if (this._graceTimer !== null) this.timers.clearTimeout(this._graceTimer);
      this._graceTimer = null;
      if (this.router.has("video")) this._setStatus(MediaStatus.PLAYING);
    } else if (state === "disconnected") {
      // often recovers by itself within seconds; give it a grace period before renegotiating
      if (this._graceTimer === null) {
        this._graceTimer = this.timers.setTimeout(() => {
          this._graceTimer = null;
          if (pc === this.pc && pc.connectionState !== "connected") this._restart();
        }, this.disconnectGraceMs);
      }
    } else if (state === "failed" || state === "closed") {
      this._restart();
    }
  }

  _restart() {
    this._closePeer();
    this._setStatus(MediaStatus.FAILED, { reason: "peer connection lost" });
    this._sayHello(true);
  }

  async _addIce(candidate) {
    try {
      await this.pc?.addIceCandidate(candidate);
    } catch {
      // a candidate for an old generation; harmless
    }
  }

  _closePeer() {
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.ontrack = pc.onicecandidate = pc.onconnectionstatechange = null;
      try {
        pc.close();
      } catch {
        // already closed
      }
    }
    this._pendingIce = [];
    if (this.hostId) this.router.unpublish({ streamId: this.streamId, publisherId: this.hostId });
  }

  _clearTimers() {
    for (const key of ["_helloTimer", "_graceTimer"]) {
      if (this[key] !== null) this.timers.clearTimeout(this[key]);
      this[key] = null;
    }
  }

  _setStatus(status, info = {}) {
    if (status === this.status && !info.reason) return;
    this.status = status;
    this.emit("status", status, info);
  }
}

export class LocalWebRtcHost extends Emitter {
  constructor({ signaller, RTCPeerConnection = globalThis.RTCPeerConnection, iceServers = [], maxViewers = 8 }) {
    super();
    this.signaller = signaller;
    this.RTCPeerConnection = RTCPeerConnection;
    this.iceServers = iceServers;
    this.maxViewers = maxViewers;
    this.peers = new Map(); // viewer peer id -> {pc, pendingIce}
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
        if (!this._live || !this.stream) return;
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
      case "bye":
        this._drop(id);
        break;
      default:
        break;
    }
  }

  async _offer(id) {
    this._drop(id); // a repeated hello means the viewer lost us: start over
    const pc = new this.RTCPeerConnection({ iceServers: this.iceServers });
    const peer = { pc, pendingIce: [] };
    this.peers.set(id, peer);
    for (const track of this.stream.getTracks()) pc.addTrack(track, this.stream);
    pc.onicecandidate = (event) => {
      if (this.peers.get(id) === peer && event.candidate) this.signaller.send(id, "ice", toJson(event.candidate));
    };
    pc.onconnectionstatechange = () => {
      if (this.peers.get(id) !== peer) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this._drop(id);
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
