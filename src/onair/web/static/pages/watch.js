// /watch/{id}: the buyer. Explicit player states (viewer_state.js), chat with history and live
// messages, a network-quality indicator, fullscreen, and video that letterboxes on rotation.

import { realTimers } from "../client/emitter.js";
import { ChatLog } from "../client/chat_log.js";
import { ChatSync } from "../client/chat_sync.js";
import { showcaseView } from "../client/showcase_state.js";
import { ViewerMachine, View } from "../client/viewer_state.js";
import { VideoQuality } from "../client/video_quality.js";
import { TrackRouter } from "../client/media/track_router.js";
import { Signaller, peerId } from "../client/media/signalling.js";
import { LocalWebRtcHost, LocalWebRtcViewer } from "../client/media/local_webrtc.js";
import { AgoraPublisher, AgoraViewer, loadAgoraSdk } from "../client/media/agora.js";
import { playMutedFirst } from "../client/media/interface.js";
import { Failure, failureText, mediaFailure } from "../client/media/failure.js";
import { ChatPanel } from "./chat_panel.js";
import { playbackTelemetry } from "./playback_telemetry.js";
import { reactionsPanel } from "./reactions_panel.js";
import { connectRealtime, ensureSignedIn, every, makeApi, readConfig, renderSession, Session } from "./common.js";
import { streamChannel } from "./stream_channel.js";
import { renderShowcase, ShowcaseSync, tickCountdowns } from "./showcase_panel.js";

const OVERLAY_TEXT = {
  [View.CONNECTING]: "Connecting…",
  [View.WAITING]: "Waiting for the host…",
  [View.PLAYING]: "",
  [View.PAUSED]: "Paused by the host",
  [View.RECONNECTING]: "Reconnecting…",
  [View.UNAVAILABLE]: "Video unavailable",
  [View.ENDED]: "The stream has ended",
  [View.ERROR]: "Something went wrong",
};

const config = readConfig();
const streamId = config.stream_id;
const session = new Session();
const api = makeApi(session);
const $ = (id) => document.getElementById(id);
const player = $("player");
const video = $("video");

function renderView(view, facts) {
  player.dataset.view = view;
  player.dataset.failure = view === View.UNAVAILABLE ? facts.mediaFailure.code : "";
  $("overlay-text").textContent =
    view === View.ERROR ? `${OVERLAY_TEXT[view]}: ${facts.error}`
    : view === View.UNAVAILABLE ? facts.mediaFailure.text || failureText(facts.mediaFailure.code)
    : OVERLAY_TEXT[view];
  $("retry").hidden = view !== View.ERROR && view !== View.UNAVAILABLE;
  $("retry").textContent = view === View.UNAVAILABLE ? "Try again" : "Retry";
}

const machine = new ViewerMachine((view) => {
  if (view === View.ENDED) {
    chatPanel?.closeInput("The stream has ended");
    teardown();
  }
}, (view, facts) => {
  renderView(view, facts); // a failure's reason can change under the same view
  firstFrameDeadline(view, facts);
});
player.dataset.view = machine.view;

let media = null;
let chatPanel = null;
let restartMedia = async () => location.reload();

// A live stream whose video has not started after `firstFrameTimeoutMs` is an error with a reason
// and "Try again", not an endless "Connecting…". The clock runs only while the view is
// "connecting" on a live stream (waiting for a host who is not publishing is not a failure).
let deadlineTimer = null;
function firstFrameDeadline(view, facts) {
  const waiting = view === View.CONNECTING && facts.stream === "live";
  if (!waiting) {
    clearTimeout(deadlineTimer);
    deadlineTimer = null;
  } else if (deadlineTimer === null) {
    deadlineTimer = setTimeout(() => {
      deadlineTimer = null;
      if (machine.view === View.CONNECTING) machine.dispatch({ type: "media-failure", code: Failure.TIMEOUT, text: failureText(Failure.TIMEOUT) });
    }, config.web?.media?.firstFrameTimeoutMs ?? 20_000);
  }
}
let stopHeartbeat = () => {};
let ended = false;

let lastVersion = -1;
let sellerId = null;

function onStream(stream) {
  if (String(stream.id ?? streamId) !== String(streamId)) return;
  // replies and events can cross: never let an older row undo a newer one
  if (Number.isInteger(stream.version)) {
    if (stream.version < lastVersion) return;
    lastVersion = stream.version;
  }
  $("title").textContent = stream.title ?? $("title").textContent;
  if (stream.seller_id) sellerId = String(stream.seller_id);
  if (Number.isInteger(stream.viewer_count)) $("viewers").textContent = String(stream.viewer_count);
  machine.dispatch({ type: "stream", status: stream.status });
}

async function teardown() {
  if (ended) return;
  ended = true;
  stopHeartbeat();
  cohosting.stopMedia();
  cohosting.render();
  await media?.stop().catch(() => {});
  api.leaveAsViewer(streamId).catch(() => {});
}

/** A stream that had ended when the page opened: its chat history over REST, read-only, no socket. */
function showEndedChat() {
  const log = new ChatLog();
  const sync = new ChatSync({ api, streamId, log, timers: realTimers, onError: (err) => chatPanel?.showError(err) });
  chatPanel = new ChatPanel({ root: $("chat"), log, outbox: null, sync, me: session.userId });
  chatPanel.closeInput("The stream has ended");
  const badge = $("conn");
  badge.dataset.conn = "ended"; // no live connection is needed, so none is attempted
  badge.textContent = "ended";
  $("quality").hidden = true; // there is no link whose quality would matter
  sync.resync();
}

/**
 * Co-hosts on camera: an invited user sees "Join as co-host" and publishes camera and microphone
 * to every viewer (local mode: as one more WebRTC host on the stream's channel; Agora mode: with a
 * publisher token). A demotion ("token_renew" with the subscriber role, sent to this user only)
 * stops publishing at once; the server refuses a demoted user's signalling and tokens anyway.
 */
const cohosting = {
  invited: false,
  publisher: null, // LocalWebRtcHost or AgoraPublisher while on camera
  camera: null, // local mode's MediaStream
  channel: null,

  bind({ channel }) {
    this.channel = channel;
    $("cohost-join").addEventListener("click", () => this.join());
    $("cohost-leave").addEventListener("click", () => this.leave("You left the camera."));
    channel.on("state", (state) => {
      if (state === "joined") this.publisher?.announce?.(); // viewers who lost us say hello again
    });
  },

  async refresh() {
    try {
      const rows = await api.listCohosts(streamId);
      this.invited = rows.some((row) => row.user_id === session.userId);
    } catch {
      // not signed in as a user the server knows, or the stream is gone: no invitation to show
    }
    this.render();
  },

  onRenew(payload) {
    if (payload.role === "publisher") {
      this.invited = true;
      this.render();
    } else if (payload.reason === "demoted") {
      this.invited = false;
      this.leave("You are no longer a co-host of this stream.");
    }
  },

  render(text = null) {
    const onCamera = Boolean(this.publisher);
    const bar = $("cohost-bar");
    bar.hidden = !this.invited && !onCamera && !text;
    bar.dataset.cohost = onCamera ? "on-camera" : this.invited ? "invited" : "";
    $("cohost-text").textContent = text ?? (onCamera ? "You are on camera." : "The seller invited you as a co-host.");
    $("cohost-join").hidden = onCamera || !this.invited || ended;
    $("cohost-leave").hidden = !onCamera;
  },

  async join() {
    $("cohost-join").disabled = true;
    try {
      if (config.media_mode === "agora") {
        const AgoraRTC = await loadAgoraSdk();
        const publisher = new AgoraPublisher({ AgoraRTC, api, streamId, joinTimeoutMs: config.web?.media?.agoraJoinTimeoutMs });
        publisher.on("demoted", () => this.leave("You are no longer a co-host of this stream."));
        await publisher.start();
        this.publisher = publisher;
        publisher.previewInto(this.selfTile(null));
      } else {
        this.camera = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: true });
        const signaller = new Signaller({ channel: this.channel, streamId, peerId: peerId("host", session.userId), isHost: true });
        this.publisher = new LocalWebRtcHost({ signaller, iceServers: config.ice_servers ?? [], maxViewers: config.web?.local_max_viewers ?? 8 });
        this.publisher.start(this.camera);
        this.selfTile(this.camera);
      }
      this.render();
    } catch (err) {
      this.stopMedia();
      this.render(mediaFailure(err).text);
    } finally {
      $("cohost-join").disabled = false;
    }
  },

  /** The co-host's own camera, as a muted tile marked "you". */
  selfTile(stream) {
    let tile = $("tiles").querySelector("[data-self]");
    if (!tile) {
      tile = document.createElement(stream ? "video" : "div");
      tile.dataset.self = "";
      tile.setAttribute("aria-label", "Your camera");
      $("tiles").prepend(tile);
    }
    if (stream) playMutedFirst(tile, stream);
    return tile;
  },

  stopMedia() {
    const publisher = this.publisher;
    this.publisher = null;
    publisher?.stop();
    for (const track of this.camera?.getTracks() ?? []) track.stop();
    this.camera = null;
    $("tiles").querySelector("[data-self]")?.remove();
  },

  leave(text) {
    if (!this.publisher && !this.camera) {
      this.render(this.invited ? null : text);
      return;
    }
    this.stopMedia();
    this.render(text);
  },
};

async function main() {
  $("retry").addEventListener("click", () => (machine.view === View.UNAVAILABLE ? restartMedia() : location.reload()));
  try {
    await ensureSignedIn(api, session, config);
  } catch (err) {
    machine.dispatch({ type: "error", message: `sign-in failed: ${err.message}` });
    return;
  }
  renderSession(session);
  if (!session.signedIn) {
    machine.dispatch({ type: "error", message: "please sign in on the home page" });
    return;
  }
  try {
    onStream(await api.getStream(streamId));
  } catch (err) {
    machine.dispatch({ type: "error", message: err.status === 404 ? "this stream does not exist" : err.message });
    return;
  }
  if (machine.view === View.ENDED) {
    showEndedChat();
    return;
  }

  const { socket, manager } = connectRealtime(config, session, api);
  // in Agora mode the SDK plays into its own <video> in the player's [data-agora] box
  const shownVideo = () => (config.media_mode === "agora" ? player.querySelector("[data-agora] video") : video);
  const playback = playbackTelemetry({ page: "watch", video: shownVideo, session, manager, config, isPlaying: () => machine.view === View.PLAYING });
  const quality = new VideoQuality();
  const { channel, log, sync, outbox } = streamChannel({
    socket, manager, api, config, session, streamId, onStream,
    onViewerCount: (n) => ($("viewers").textContent = String(n)),
    onTokenRenew: (payload) => {
      if (payload?.user_id === session.userId) cohosting.onRenew(payload);
      media?.renewNow?.().catch(() => {});
    },
  });
  chatPanel = new ChatPanel({ root: $("chat"), log, outbox, sync, me: session.userId, maxChars: config.web?.chat_max_chars });
  const boxes = { pinnedBox: $("pinned-product"), trayBox: $("tray"), messageBox: $("pinned-message") };
  const showcase = new ShowcaseSync({
    api, streamId, onChange: (view, state) => renderShowcase(boxes, view, state, Date.now()),
  }).bind(channel);
  showcase.resync(); // at once, before the channel joins: a late viewer sees the pinned product
  every(250, () => {
    if (tickCountdowns($("showcase"), showcase, Date.now())) renderShowcase(boxes, showcaseView(showcase.state), showcase.state, Date.now());
  });
  const reactions = reactionsPanel({ root: $("reactions"), layer: player, channel, api, streamId });

  // Connection → view, and link quality → indicator and video layer (video degrades first).
  manager.on("state", () => machine.dispatch({ type: "connection", online: manager.online || manager.state === "connecting" }));
  manager.on("rtt", () => {
    $("quality").dataset.quality = manager.quality;
    $("quality").title = `Network quality: ${manager.quality}`;
    media?.setLayer(quality.recordLinkQuality(manager.quality));
  });

  // Media: tracks reach the page only through the router for this stream, one slot per
  // (publisher, kind). The seller's video is the main picture; co-hosts on camera are tiles
  // beside it. A new MediaStream per change makes the <video> reload and fire "playing" again
  // after a reconnect, which is what moves the view back to playing.
  const publishers = new Map(); // publisher id -> Map(kind -> track)
  let current = new Map(); // the main picture's kind -> track
  let userUnmuted = false;
  const show = () => {
    if (config.media_mode === "agora") return; // the SDK plays into the container itself
    if (!current.size) {
      video.srcObject = null;
      return;
    }
    playMutedFirst(video, new MediaStream([...current.values()])).then((result) => {
      if (!current.size) return;
      if (userUnmuted) video.muted = false;
      const button = $("unmute");
      // autoplay refused even muted (low-power iOS, in-app browsers): the user has to tap
      button.textContent = result === "blocked" ? "Tap to play" : "Tap for sound";
      button.hidden = result !== "blocked" && (userUnmuted || !current.has("audio"));
    });
  };
  const isSellers = (publisherId) => sellerId !== null && publisherId.startsWith(`host:${sellerId}:`);
  const renderPublishers = () => {
    if (config.media_mode === "agora") return; // the SDK plays into the boxes AgoraViewer is given
    const ids = [...publishers.keys()].filter((id) => publishers.get(id).size);
    ids.sort((a, b) => Number(isSellers(b)) - Number(isSellers(a))); // stable: the seller first
    const [main, ...others] = ids;
    const next = publishers.get(main) ?? new Map();
    const changed = next.size !== current.size || [...next].some(([kind, track]) => current.get(kind) !== track);
    current = new Map(next);
    if (changed) show();
    renderTiles(others);
  };
  const renderTiles = (ids) => {
    const tiles = $("tiles");
    for (const tile of [...tiles.querySelectorAll("video[data-publisher]")]) {
      if (!ids.includes(tile.dataset.publisher)) tile.remove();
    }
    for (const id of ids) {
      const tracks = [...publishers.get(id).values()];
      let tile = tiles.querySelector(`video[data-publisher="${CSS.escape(id)}"]`);
      if (!tile) {
        tile = Object.assign(document.createElement("video"), { autoplay: true, playsInline: true, muted: !userUnmuted });
        tile.dataset.publisher = id;
        tile.setAttribute("aria-label", "Co-host video");
        tiles.append(tile);
      }
      const same = tile.srcObject && tracks.every((t) => tile.srcObject.getTracks().includes(t)) && tile.srcObject.getTracks().length === tracks.length;
      if (!same) playMutedFirst(tile, new MediaStream(tracks)).then(() => (tile.muted = !userUnmuted));
    }
    player.dataset.tiles = String(tiles.children.length);
  };
  const router = new TrackRouter({
    streamId,
    attach: (slot) => {
      if (!publishers.has(slot.publisherId)) publishers.set(slot.publisherId, new Map());
      publishers.get(slot.publisherId).set(slot.kind, slot.track);
      renderPublishers();
    },
    detach: (slot) => {
      const tracks = publishers.get(slot.publisherId);
      if (tracks?.get(slot.kind) === slot.track) tracks.delete(slot.kind);
      if (tracks && !tracks.size) publishers.delete(slot.publisherId);
      renderPublishers();
    },
  });
  let container = null;
  if (config.media_mode === "agora") {
    container = document.createElement("div");
    container.dataset.agora = "";
    player.prepend(container);
    video.hidden = true;
  }
  const failed = (err) => {
    const failure = mediaFailure(err);
    machine.dispatch({ type: "media-failure", code: failure.code, text: failure.text });
  };
  /** A fresh media adapter (a retry never reuses one that failed); its events count only while current. */
  async function makeMedia() {
    if (config.media_mode === "agora") {
      const AgoraRTC = await loadAgoraSdk();
      // co-hosts on camera get a tile each; the SDK plays into whatever box it is given
      const agoraTile = (uid) => $("tiles").querySelector(`div[data-publisher="agora:${CSS.escape(String(uid))}"]`);
      const containerFor = (uid, isFirst) => {
        if (isFirst) return container;
        const tile = agoraTile(uid) ?? Object.assign(document.createElement("div"), { className: "agora-tile" });
        tile.dataset.publisher = `agora:${uid}`;
        $("tiles").append(tile);
        return tile;
      };
      const release = (uid) => agoraTile(uid)?.remove();
      return new AgoraViewer({ AgoraRTC, api, streamId, container, router, quality, timers: realTimers, joinTimeoutMs: config.web?.media?.agoraJoinTimeoutMs, containerFor, release });
    }
    const signaller = new Signaller({ channel, streamId, peerId: peerId("viewer", session.userId) });
    return new LocalWebRtcViewer({ signaller, router, streamId, timers: realTimers, iceServers: config.ice_servers ?? [] });
  }
  async function startMedia() {
    let adapter;
    try {
      adapter = await makeMedia();
    } catch (err) {
      playback.failure(err);
      failed(err);
      return;
    }
    media = adapter;
    const isCurrent = () => adapter === media;
    playback.watchMedia(adapter);
    adapter.on("autoplay-blocked", () => isCurrent() && ($("unmute").hidden = false));
    adapter.on("status", (status, info) => {
      if (!isCurrent()) return;
      if (status === "failed" && info?.code) return failed(info);
      // local mode: "playing" means frames are being decoded, not just that a track exists
      if (status === "playing" && config.media_mode !== "agora" && !(video.videoWidth > 0)) return;
      machine.dispatch({ type: "media", status });
    });
    adapter.on("layer", (layer) => isCurrent() && ($("layer").textContent = layer));
    await adapter.start().catch((err) => {
      if (!isCurrent()) return;
      playback.failure(err);
      failed(err);
    });
  }
  restartMedia = async () => {
    const previous = media;
    media = null;
    machine.dispatch({ type: "media-retry" });
    await previous?.stop().catch(() => {});
    await startMedia();
  };
  if (config.media_mode !== "agora") {
    channel.on("state", (state) => {
      if (state === "joined") media?.channelJoined?.();
    });
  }
  video.addEventListener("playing", () => machine.dispatch({ type: "media", status: "playing" }));
  video.addEventListener("resize", () => {
    if (video.videoWidth > 0 && video.videoHeight > 0) player.style.aspectRatio = `${video.videoWidth} / ${video.videoHeight}`;
    if (video.videoWidth > 0) machine.dispatch({ type: "media", status: "playing" });
  });
  $("unmute").addEventListener("click", () => {
    userUnmuted = true;
    video.muted = false;
    for (const tile of $("tiles").querySelectorAll("video[data-publisher]")) tile.muted = false;
    video.play().catch(() => {});
    $("unmute").hidden = true;
  });
  $("fullscreen").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else player.requestFullscreen?.().catch(() => {});
  });

  cohosting.bind({ channel });
  cohosting.refresh();
  channel.subscribe();
  manager.start();
  // Count us as a viewer at once, whether or not video starts (a viewer stuck joining Agora is
  // still watching); heartbeats keep us counted and carry the stream's state too (so state stays
  // right even while the realtime socket is down).
  api.joinAsViewer(streamId).then(onStream).catch(() => {});
  startMedia();
  stopHeartbeat = every((config.heartbeat_interval ?? 10) * 1000, async () => onStream((await api.heartbeat(streamId)).stream));
  addEventListener("pagehide", () => {
    media?.stop().catch(() => {}); // local mode: "bye" frees our place at the seller's at once
    fetch(`/api/v1/streams/${encodeURIComponent(streamId)}/viewers/me`, { method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${session.token}` } }).catch(() => {});
  });
  globalThis.onair = { machine, manager, log, outbox, get media() { return media; }, cohosting, socket, telemetry: playback.telemetry, showcase, reactions }; // for debugging and tests
}

main();
