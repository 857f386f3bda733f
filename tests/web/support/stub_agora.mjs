// A stub of the Agora Web SDK's documented interface (agora-rtc-sdk-ng 4.x, spec agora.md B.1–B.5):
// createClient, client.on/join/leave/subscribe/renewToken/setRemoteVideoStreamType/
// setRemoteDefaultVideoStreamType/setStreamFallbackOption/setClientRole/enableDualStream/publish,
// AgoraRTC.onAutoplayFailed, createMicrophoneAndCameraTracks, getCameras/getMicrophones. It records
// every call in order, and `fire(event, ...args)` emits an SDK event. Like the real SDK, publishers
// already in the channel are announced through "user-published" during join(); tracks carry
// `trackMediaType` (not `kind`); with `unreachable` a join never settles until leave() rejects it
// with OPERATION_ABORTED, as the real SDK does without a route to Agora's gateway.
// tests/web/agora_conformance.test.mjs checks the adapter against the real SDK's declarations;
// this stub is for behaviour that would need Agora's network.

export function createStubAgora({ publishersInChannel = [], onPlay = null, unreachable = false, devicesError = null } = {}) {
  const calls = [];
  const clients = [];
  // play(element) notes whether the element was in the DOM with a non-zero size, as the SDK needs
  // (a detached or 0-size container shows black, spec B.2 #2).
  const placement = (el) =>
    typeof Element !== "undefined" && el instanceof Element
      ? { connected: el.isConnected, width: el.getBoundingClientRect().width, height: el.getBoundingClientRect().height }
      : null;
  const makeTrack = (uid, trackMediaType) => ({
    trackMediaType,
    uid,
    played: [],
    play(...args) {
      this.played.push(args);
      calls.push(["play", uid, trackMediaType, ...args]);
      if (args[0]) calls.push(["placement", uid, placement(args[0])]);
      if (onPlay) onPlay(this, ...args);
    },
    close() {
      calls.push(["close", uid, trackMediaType]);
    },
    getMediaStreamTrack() {
      return { getSettings: () => ({ deviceId: `${trackMediaType}-device-1` }) };
    },
    async setDevice(deviceId) {
      calls.push(["setDevice", trackMediaType, deviceId]);
    },
  });
  const AgoraRTC = {
    onAutoplayFailed: null,
    unreachable, // may be flipped by a test: the network came back
    calls,
    clients,
    createClient(config) {
      calls.push(["createClient", config]);
      const handlers = new Map();
      const client = {
        config,
        handlers,
        joined: false,
        on(event, fn) {
          calls.push(["on", event]);
          handlers.set(event, fn);
        },
        removeAllListeners() {
          handlers.clear();
        },
        async fire(event, ...args) {
          const fn = handlers.get(event);
          if (fn) await fn(...args);
        },
        async join(appId, channel, token, uid) {
          calls.push(["join", appId, channel, token, uid]);
          if (AgoraRTC.unreachable) {
            await new Promise((_, reject) => (client.abortJoin = () => reject(Object.assign(new Error("cancel token canceled"), { code: "OPERATION_ABORTED" }))));
          }
          if (token === "expired") throw Object.assign(new Error("dynamic key or token timeout"), { code: "CAN_NOT_GET_GATEWAY_SERVER" });
          client.joined = true;
          for (const p of publishersInChannel) {
            await client.fire("user-published", p.user, p.mediaType);
          }
          return uid;
        },
        async leave() {
          calls.push(["leave"]);
          client.abortJoin?.();
          client.abortJoin = null;
          client.joined = false;
        },
        async subscribe(user, mediaType) {
          calls.push(["subscribe", user.uid, mediaType]);
          if (user.gone) throw Object.assign(new Error("TRACK_IS_NOT_PUBLISHED"), { code: "TRACK_IS_NOT_PUBLISHED" });
          const track = { ...makeTrack(user.uid, mediaType), client: clients.indexOf(client) };
          track.play = makeTrack(user.uid, mediaType).play;
          if (mediaType === "video") user.videoTrack = track;
          if (mediaType === "audio") user.audioTrack = track;
        },
        async renewToken(token) {
          calls.push(["renewToken", token]);
        },
        setRemoteVideoStreamType(uid, type) {
          calls.push(["setRemoteVideoStreamType", uid, type]);
        },
        setRemoteDefaultVideoStreamType(type) {
          calls.push(["setRemoteDefaultVideoStreamType", type]);
        },
        setStreamFallbackOption(uid, type) {
          calls.push(["setStreamFallbackOption", uid, type]);
        },
        async setClientRole(role) {
          calls.push(["setClientRole", role]);
        },
        async enableDualStream() {
          calls.push(["enableDualStream"]);
        },
        async publish(tracks) {
          calls.push(["publish", tracks.map((t) => t.trackMediaType)]);
        },
      };
      clients.push(client);
      return client;
    },
    async createMicrophoneAndCameraTracks(audioConfig, videoConfig) {
      calls.push(["createMicrophoneAndCameraTracks", audioConfig, videoConfig]);
      if (devicesError) throw Object.assign(new Error(devicesError), { name: "AgoraRTCException", code: devicesError });
      return [makeTrack("local", "audio"), makeTrack("local", "video")];
    },
    async getCameras() {
      return [{ kind: "videoinput", deviceId: "video-device-1", label: "Stub camera", groupId: "" }];
    },
    async getMicrophones() {
      return [{ kind: "audioinput", deviceId: "audio-device-1", label: "Stub microphone", groupId: "" }];
    },
  };
  return AgoraRTC;
}
