// Agora mode: the Web SDK (agora-rtc-sdk-ng 4.x), loaded from Agora's CDN only in this mode.
// Follows spec agora.md part B:
//   * every handler is registered BEFORE join() — publishers already in the channel are reported
//     through "user-published" while join() runs (B.1, B.2 #1);
//   * subscribe in "user-published", and play only after subscribe filled user.videoTrack;
//   * play into a sized container with fit "contain" (letterbox, B.6), never a 0-size parent (B.2 #2);
//   * autoplay fallback: AgoraRTC.onAutoplayFailed → "tap for sound" (B.2 #3);
//   * live mode, vp8, audience role for viewers; host role only for the publisher (B.2 #4, #5);
//   * renewToken on "token-privilege-will-expire", re-join on "token-privilege-did-expire" (B.4);
//   * dual stream: the publisher enables the low stream; the viewer picks high/low through the
//     hysteresis in video_quality.js and sets a fallback option (low, then audio only) (B.5);
//   * join() has a deadline: without a route to Agora the SDK retries its gateway for ever, so
//     after `joinTimeoutMs` we leave() (which rejects the pending join) and report
//     "service-unreachable" (media/failure.js) for the page to show with a retry.
// The SDK object is injected (`AgoraRTC`), so tests drive this file with a stub of the documented
// interface; tests/web/agora_conformance.test.mjs checks every SDK member and event named here
// against the real SDK's type declarations. SDK objects are only ever held in variables named
// `AgoraRTC`, `client`, `user`, `remoteTrack` and `localTrack`, which is what that test reads.

import { Emitter, realTimers } from "../emitter.js";
import { MediaStatus } from "./interface.js";
import { Failure, MediaError, mediaFailure, withDeadline } from "./failure.js";
import { VideoQuality } from "../video_quality.js";
import { RefreshTimer } from "../token_refresh.js";

export const AGORA_SDK_URL = "https://download.agora.io/sdk/release/AgoraRTC_N-4.24.8.js";

/** Load the SDK from Agora's CDN (Agora mode only); resolves the global AgoraRTC. */
export function loadAgoraSdk(doc = globalThis.document, url = AGORA_SDK_URL) {
  if (globalThis.AgoraRTC) return Promise.resolve(globalThis.AgoraRTC);
  return new Promise((resolve, reject) => {
    const script = doc.createElement("script");
    script.src = url;
    script.async = true;
    script.onload = () => (globalThis.AgoraRTC ? resolve(globalThis.AgoraRTC) : reject(new Error("Agora SDK did not load")));
    script.onerror = () => reject(new MediaError(Failure.SERVICE_UNREACHABLE, "Can't load the video service's SDK. Check the connection, then try again."));
    doc.head.appendChild(script);
  });
}

export const STREAM_HIGH = 0; // RemoteStreamType.HIGH_STREAM
export const STREAM_LOW = 1; // RemoteStreamType.LOW_STREAM
export const FALLBACK_LOW_THEN_AUDIO = 2; // RemoteStreamFallbackType.AUDIO_ONLY
export const DEFAULT_JOIN_TIMEOUT_MS = 12_000;

/** The SDK's tracks carry `trackMediaType` ("audio" | "video"), not a MediaStreamTrack's `kind`. */
export function videoTrackOf(tracks) {
  return tracks.find((localTrack) => localTrack.trackMediaType === "video") ?? null;
}

/** client.join() that gives up after `ms`: leave() aborts the SDK's endless gateway retries. */
function joinWithin(client, credentials, { ms, timers }) {
  return withDeadline(
    client.join(credentials.app_id, credentials.channel, credentials.token, credentials.uid ?? null),
    ms,
    { timers, abort: () => client.leave(), onTimeout: () => new MediaError(Failure.SERVICE_UNREACHABLE) },
  );
}

/** Seconds-or-ISO expiry fields of a token response, as ms epoch. */
function expiryOf(token) {
  const toMs = (v) => (v === undefined || v === null ? undefined : typeof v === "number" ? v * 1000 : Date.parse(v));
  return { expiresAt: toMs(token.expires_at), refreshAfter: toMs(token.refresh_after) };
}

export class AgoraViewer extends Emitter {
  /**
   * @param api        {rtcToken(streamId), refreshRtcToken(streamId)} → {token, app_id, channel, uid, expires_at, refresh_after}
   * @param container  the HTMLElement the SDK creates its <video> in (must be in the DOM and sized)
   */
  /**
   * `containerFor(uid, isFirst)` places a publisher's video: the main container for the first
   * publisher with video, a tile for co-hosts on camera (default: everything in `container`);
   * `release(uid)` is told when that publisher's video goes.
   */
  constructor({ AgoraRTC, api, streamId, container, router, quality = new VideoQuality(), timers = null, now = () => Date.now(), joinTimeoutMs = DEFAULT_JOIN_TIMEOUT_MS, containerFor = null, release = () => {} }) {
    super();
    this.containerFor = containerFor ?? (() => this.container);
    this.release = release;
    this.videoUids = new Set();
    this.timers = timers ?? realTimers;
    this.joinTimeoutMs = joinTimeoutMs;
    // Besides the SDK's 30-second warning, renew at the server's `refresh_after` (80 % of the
    // lifetime, issue 3) so a slow network still has time; `renewNow()` serves the server's
    // "token_renew" event (a co-host was demoted: new privileges now).
    this.refresher = timers
      ? new RefreshTimer({ name: "rtc", timers, now, refresh: () => this.renewNow(), onExpired: () => this._rejoin() })
      : null;
    this.AgoraRTC = AgoraRTC;
    this.api = api;
    this.streamId = String(streamId);
    this.container = container;
    this.router = router;
    this.quality = quality;
    this.client = null;
    this.credentials = null;
    this.status = MediaStatus.CONNECTING;
    this.layer = "high";
    this.publishers = new Set();
  }

  async start() {
    const credentials = await this.api.rtcToken(this.streamId, "subscriber");
    this.credentials = credentials;
    this.AgoraRTC.onAutoplayFailed = () => this.emit("autoplay-blocked");
    const client = this.AgoraRTC.createClient({ mode: "live", codec: "vp8", role: "audience" });
    this.client = client;
    this._register(client);
    // The default stream type must be set before join (B.5).
    client.setRemoteDefaultVideoStreamType?.(STREAM_HIGH);
    this._setStatus(MediaStatus.CONNECTING);
    try {
      await joinWithin(client, credentials, { ms: this.joinTimeoutMs, timers: this.timers });
    } catch (err) {
      if (client !== this.client) return; // stopped meanwhile
      this.client = null;
      client.removeAllListeners?.();
      client.leave().catch(() => {});
      const failure = mediaFailure(err);
      this._setStatus(MediaStatus.FAILED, { reason: failure.text, code: failure.code });
      throw err instanceof MediaError ? err : new MediaError(failure.code, failure.text, { cause: err });
    }
    this._scheduleRefresh(credentials);
    if (this.publishers.size === 0) this._setStatus(MediaStatus.NO_PUBLISHER);
  }

  /** Fetch a fresh token for the same channel and uid and hand it to the SDK (B.4). */
  async renewNow() {
    const client = this.client;
    if (!client) throw new Error("not started");
    const fresh = await this.api.refreshRtcToken(this.streamId, "subscriber");
    this.credentials = { ...this.credentials, ...fresh };
    await client.renewToken(fresh.token);
    this.emit("token-renewed", expiryOf(fresh));
    return expiryOf(fresh);
  }

  _scheduleRefresh(credentials) {
    const expiry = expiryOf(credentials);
    if (this.refresher && Number.isFinite(expiry.expiresAt)) this.refresher.schedule(expiry);
  }

  async stop() {
    const client = this.client;
    this.client = null;
    this.refresher?.stop();
    this.router.clear();
    for (const uid of [...this.videoUids]) this._released(uid);
    if (client) {
      client.removeAllListeners?.();
      await client.leave();
    }
  }

  /** Feed a quality decision from outside (the realtime link going poor also lowers video). */
  setLayer(layer) {
    if (layer === this.layer || !this.client) return;
    this.layer = layer;
    for (const uid of this.publishers) {
      this.client.setRemoteVideoStreamType(uid, layer === "high" ? STREAM_HIGH : STREAM_LOW);
    }
    this.emit("layer", layer);
  }

  _register(client) {
    const mine = () => client === this.client;
    client.on("user-published", async (user, mediaType) => {
      if (!mine() || (mediaType !== "video" && mediaType !== "audio")) return;
      try {
        await client.subscribe(user, mediaType);
      } catch (err) {
        // TRACK_IS_NOT_PUBLISHED: it went away meanwhile; "user-unpublished" follows
        this.emit("warning", err);
        return;
      }
      if (!mine()) return;
      this.publishers.add(user.uid);
      const remoteTrack = mediaType === "video" ? user.videoTrack : user.audioTrack;
      if (mediaType === "video") {
        client.setStreamFallbackOption?.(user.uid, FALLBACK_LOW_THEN_AUDIO);
        if (this.layer !== "high") client.setRemoteVideoStreamType(user.uid, STREAM_LOW);
      }
      this.router.publish({ streamId: this.streamId, publisherId: user.uid, kind: mediaType, track: remoteTrack });
      if (mediaType === "video") {
        const isFirst = this.videoUids.size === 0 || (this.videoUids.size === 1 && this.videoUids.has(user.uid));
        this.videoUids.add(user.uid);
        remoteTrack.play(this.containerFor(user.uid, isFirst), { fit: "contain" });
        this._setStatus(MediaStatus.PLAYING);
      } else {
        remoteTrack.play();
      }
    });
    client.on("user-unpublished", (user, mediaType) => {
      if (!mine()) return;
      this.router.unpublish({ streamId: this.streamId, publisherId: user.uid, kind: mediaType });
      if (mediaType === "video") this._released(user.uid);
      if (mediaType === "video" && !this.router.has("video")) this._setStatus(MediaStatus.NO_PUBLISHER);
    });
    client.on("user-left", (user) => {
      if (!mine()) return;
      this.publishers.delete(user.uid);
      this.router.unpublish({ streamId: this.streamId, publisherId: user.uid });
      this._released(user.uid);
      if (!this.router.has("video")) this._setStatus(MediaStatus.NO_PUBLISHER);
    });
    client.on("connection-state-change", (current, previous, reason) => {
      if (!mine()) return;
      if (current === "RECONNECTING") this._setStatus(MediaStatus.FAILED, { reason: "reconnecting" });
      else if (current === "CONNECTED") this._setStatus(this.router.has("video") ? MediaStatus.PLAYING : MediaStatus.NO_PUBLISHER);
      else if (current === "DISCONNECTED" && reason && reason !== "LEAVE") {
        if (reason === "TOKEN_EXPIRE") this._rejoin();
        else this._setStatus(MediaStatus.FAILED, { reason });
      }
    });
    client.on("token-privilege-will-expire", async () => {
      if (!mine()) return;
      try {
        const next = await this.renewNow();
        if (this.refresher && Number.isFinite(next.expiresAt)) this.refresher.schedule(next);
      } catch (err) {
        this.emit("warning", err);
      }
    });
    client.on("token-privilege-did-expire", () => {
      if (mine()) this._rejoin();
    });
    client.on("network-quality", (stats) => {
      if (!mine()) return;
      this.setLayer(this.quality.recordNetworkQuality(stats?.downlinkNetworkQuality));
    });
    client.on("stream-fallback", (uid, kind) => {
      if (!mine()) return;
      this.emit("layer", kind === "fallback" ? "audio" : this.layer);
    });
    client.on("stream-type-changed", (uid, type) => {
      if (mine()) this.emit("stream-type", uid, type === STREAM_LOW ? "low" : "high");
    });
    client.on("exception", (event) => {
      if (mine()) this.emit("warning", event);
    });
  }

  _released(uid) {
    if (this.videoUids.delete(uid)) this.release(uid);
  }

  /** Token expired: fetch a new one and join again (B.4). */
  async _rejoin() {
    const client = this.client;
    if (!client) return;
    this._setStatus(MediaStatus.FAILED, { reason: "token expired" });
    try {
      const fresh = await this.api.refreshRtcToken(this.streamId, "subscriber");
      this.credentials = { ...this.credentials, ...fresh };
      await client.leave();
      if (client !== this.client) return;
      this.router.clear();
    for (const uid of [...this.videoUids]) this._released(uid);
      this.publishers.clear();
      await joinWithin(client, { ...this.credentials, token: fresh.token }, { ms: this.joinTimeoutMs, timers: this.timers });
    } catch (err) {
      const failure = mediaFailure(err);
      this._setStatus(MediaStatus.FAILED, { reason: failure.text, code: failure.code });
    }
  }

  _setStatus(status, info = {}) {
    this.status = status;
    this.emit("status", status, info);
  }
}

/**
 * The studio's side: camera and microphone tracks (opened before joining, so the seller sees the
 * preview even when Agora cannot be reached), join as host with a deadline, publish with the low
 * stream. Emits "status" ("idle" | "joining" | "sending" | "failed", info) — "sending" only once
 * publish() succeeded, so the page never claims to be on air while nothing is published.
 */
export class AgoraPublisher extends Emitter {
  constructor({ AgoraRTC, api, streamId, timers = realTimers, joinTimeoutMs = DEFAULT_JOIN_TIMEOUT_MS }) {
    super();
    this.AgoraRTC = AgoraRTC;
    this.api = api;
    this.streamId = String(streamId);
    this.timers = timers;
    this.joinTimeoutMs = joinTimeoutMs;
    this.client = null;
    this.tracks = [];
    this.status = "idle";
    this._starting = null;
  }

  /** Open camera and microphone (once); rejects with a MediaError saying why they can't be used. */
  async openDevices({ cameraId, microphoneId } = {}) {
    if (this.tracks.length) return this.tracks;
    try {
      this.tracks = await this.AgoraRTC.createMicrophoneAndCameraTracks(
        microphoneId ? { microphoneId } : {},
        { ...(cameraId ? { cameraId } : {}), encoderConfig: "720p_2" },
      );
    } catch (err) {
      const failure = mediaFailure(err);
      throw new MediaError(failure.code, failure.text, { cause: err });
    }
    return this.tracks;
  }

  /** Let the SDK render the local camera into a sized box (mirrored, its default). */
  previewInto(box) {
    const localTrack = videoTrackOf(this.tracks);
    localTrack?.play(box, { fit: "contain" });
  }

  /** Cameras and microphones as MediaDeviceInfo lists, and the ones in use. */
  async devices() {
    const [cameras, microphones] = await Promise.all([this.AgoraRTC.getCameras(), this.AgoraRTC.getMicrophones()]);
    const inUse = (kind) => this.tracks.find((localTrack) => localTrack.trackMediaType === kind)?.getMediaStreamTrack()?.getSettings().deviceId;
    return { cameras, microphones, camera: inUse("video"), microphone: inUse("audio") };
  }

  /** Switch the camera ("video") or microphone ("audio") in place, while publishing too. */
  async setDevice(kind, deviceId) {
    const localTrack = this.tracks.find((candidate) => candidate.trackMediaType === kind);
    if (localTrack && deviceId) await localTrack.setDevice(deviceId);
  }

  /** Join as host and publish; concurrent calls share one attempt. Rejects with a MediaError. */
  start(devices = {}) {
    if (this.status === "sending") return Promise.resolve(this.tracks);
    this._starting ??= this._start(devices).finally(() => (this._starting = null));
    return this._starting;
  }

  async _start(devices) {
    this._setStatus("joining");
    let client = null;
    try {
      const credentials = await this.api.rtcToken(this.streamId);
      if (credentials.role && credentials.role !== "publisher") {
        throw Object.assign(new Error("this account may not publish to the stream"), { status: 403 });
      }
      await this.openDevices(devices);
      client = this.AgoraRTC.createClient({ mode: "live", codec: "vp8", role: "host" });
      this.client = client;
      this._register(client, credentials);
      await client.setClientRole?.("host");
      await joinWithin(client, credentials, { ms: this.joinTimeoutMs, timers: this.timers });
      try {
        await client.enableDualStream();
      } catch (err) {
        this.emit("warning", err); // iOS Safari cannot; viewers then keep the one stream
      }
      await client.publish(this.tracks);
    } catch (err) {
      if (client && client === this.client) {
        this.client = null;
        client.removeAllListeners?.();
        client.leave().catch(() => {});
      }
      const failure = mediaFailure(err);
      this._setStatus("failed", failure);
      throw err instanceof MediaError ? err : new MediaError(failure.code, failure.text, { cause: err });
    }
    this._setStatus("sending");
    return this.tracks;
  }

  _register(client, credentials) {
    const mine = () => client === this.client;
    client.on("token-privilege-will-expire", async () => {
      if (!mine()) return;
      const fresh = await this.api.refreshRtcToken(this.streamId);
      await client.renewToken(fresh.token);
    });
    client.on("token-privilege-did-expire", async () => {
      if (!mine()) return;
      this._setStatus("joining");
      try {
        const fresh = await this.api.refreshRtcToken(this.streamId);
        await client.leave();
        await joinWithin(client, { ...credentials, token: fresh.token }, { ms: this.joinTimeoutMs, timers: this.timers });
        await client.publish(this.tracks);
        this._setStatus("sending");
      } catch (err) {
        this._setStatus("failed", mediaFailure(err));
      }
    });
    client.on("connection-state-change", (current, _previous, reason) => {
      if (!mine() || this.status === "joining") return;
      if (current === "RECONNECTING") this._setStatus("failed", { code: Failure.SERVICE_UNREACHABLE, text: "Reconnecting to the video service…", retryable: true });
      else if (current === "CONNECTED") this._setStatus("sending");
      else if (current === "DISCONNECTED" && reason && reason !== "LEAVE") this._setStatus("failed", { code: Failure.SERVICE_UNREACHABLE, text: `Disconnected from the video service (${reason}).`, retryable: true });
    });
  }

  /** The server says our privileges changed (e.g. a co-host was demoted): renew now, and stop
   * publishing if the new token no longer allows it. */
  async renewNow() {
    if (!this.client) return;
    const fresh = await this.api.refreshRtcToken(this.streamId);
    if (fresh.role && fresh.role !== "publisher") {
      await this.stop();
      this.emit("demoted");
      return;
    }
    await this.client.renewToken(fresh.token);
  }

  /** Stop publishing; with `closeDevices` the camera and microphone are released too. */
  async stop({ closeDevices = true } = {}) {
    const client = this.client;
    this.client = null;
    if (closeDevices) {
      for (const localTrack of this.tracks) localTrack.close?.();
      this.tracks = [];
    }
    if (client) {
      client.removeAllListeners?.();
      await client.leave();
    }
    this._setStatus("idle");
  }

  _setStatus(status, info = {}) {
    this.status = status;
    this.emit("status", status, info);
  }
}
