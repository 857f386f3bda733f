// /watch/{id}: the buyer. Explicit player states (viewer_state.js), chat with history and live
// messages, a network-quality indicator, fullscreen, and video that letterboxes on rotation.

import { realTimers } from "../client/emitter.js";
import { ChatLog } from "../client/chat_log.js";
import { ChatSync } from "../client/chat_sync.js";
import { showcaseView } from "../client/showcase_state.js";
import { ViewerMachine, View } from "../client/viewer_state.js";
import { VideoQuality } from "../client/video_quality.js";
import { TrackRouter } from "../client/media/track_router.js";
import { Signaller } from "../client/media/signalling.js";
import { LocalWebRtcViewer } from "../client/media/local_webrtc.js";
import { AgoraViewer, loadAgoraSdk } from "../client/media/agora.js";
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

function onStream(stream) {
  if (String(stream.id ?? streamId) !== String(streamId)) return;
  // replies and events can cross: never let an older row undo a newer one
  if (Number.isInteger(stream.version)) {
    if (stream.version < lastVersion) return;
    lastVersion = stream.version;
  }
  $("title").textContent = stream.title ?? $("title").textContent;
  if (Number.isInteger(stream.viewer_count)) $("viewers").textContent = String(stream.viewer_count);
  machine.dispatch({ type: "stream", status: stream.status });
}

async function teardown() {
  if (ended) return;
  ended = true;
  stopHeartbeat();
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
  const playback = playbackTelemetry({ page: "watch", video, session, manager, config, isPlaying: () => machine.view === View.PLAYING });
  const quality = new VideoQuality();
  const { channel, log, sync, outbox } = streamChannel({
    socket, manager, api, config, session, streamId, onStream,
    onViewerCount: (n) => ($("viewers").textContent = String(n)),
    onTokenRenew: () => media?.renewNow?.().catch(() => {}),
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

  // Media: tracks reach the <video> only through the router for this stream.
  // A new MediaStream per change makes the <video> reload and fire "playing" again after a
  // reconnect, which is what moves the view back to playing.
  const current = new Map(); // kind -> track
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
  const router = new TrackRouter({
    streamId,
    attach: (slot) => {
      current.set(slot.kind, slot.track);
      show();
    },
    detach: (slot) => {
      if (current.get(slot.kind) === slot.track) current.delete(slot.kind);
      show();
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
      return new AgoraViewer({ AgoraRTC, api, streamId, container, router, quality, timers: realTimers, joinTimeoutMs: config.web?.media?.agoraJoinTimeoutMs });
    }
    const signaller = new Signaller({ channel, streamId, peerId: `viewer:${session.userId}:${crypto.randomUUID().slice(0, 8)}` });
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
    video.play().catch(() => {});
    $("unmute").hidden = true;
  });
  $("fullscreen").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else player.requestFullscreen?.().catch(() => {});
  });

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
  globalThis.onair = { machine, manager, log, outbox, get media() { return media; }, socket, telemetry: playback.telemetry, showcase, reactions }; // for debugging and tests
}

main();
