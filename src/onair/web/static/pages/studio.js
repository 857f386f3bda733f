// /studio/{id}: the seller. Camera and microphone preview with device pickers, start / pause /
// resume / end, live viewer count, chat with moderation, co-host invite, connection status.
// The studio heartbeats while the stream is live or paused, so the reaper's auto-pause only
// fires when the seller's browser is really gone.

import { AgoraPublisher, loadAgoraSdk } from "../client/media/agora.js";
import { mediaFailure } from "../client/media/failure.js";
import { LocalWebRtcHost } from "../client/media/local_webrtc.js";
import { Signaller, peerId } from "../client/media/signalling.js";
import { ChatPanel } from "./chat_panel.js";
import { playbackTelemetry } from "./playback_telemetry.js";
import { reactionsPanel } from "./reactions_panel.js";
import { connectRealtime, every, makeApi, readConfig, renderSession, Session, showError, signInFromApp } from "./common.js";
import { SELLER_STATE_EVENT, streamChannel } from "./stream_channel.js";
import { ShowcaseSync } from "./showcase_panel.js";
import { mountStudioShowcase } from "./showcase_studio.js";

const config = readConfig();
const streamId = config.stream_id;
const session = new Session();
const api = makeApi(session);
const $ = (id) => document.getElementById(id);
const errorBox = $("studio-error");

let stream = null; // the stream row as last seen
let playback = null; // what this page reports (playback_telemetry.js)

// The server's transition table (domain/streams.py); realtime events carry the row without
// `allowed_actions`, so the buttons follow the status itself.
const ALLOWED = { scheduled: ["start", "end"], live: ["pause", "end"], paused: ["resume", "end"], ended: [] };
let localStream = null;
let publisher = null; // LocalWebRtcHost or AgoraPublisher
let stopHeartbeat = null;
let channel = null;
let chatPanel = null;
// Whether viewers can get the seller's video: "off" (not on air), "joining", "on", or "failed"
// with the reason. The page never says "on air" while nothing is published.
let sending = { state: "off", text: "" };

function sendingText() {
  switch (sending.state) {
    case "failed":
      return `Video not sent: ${sending.text}`;
    case "joining":
      return config.media_mode === "agora" ? "Video: connecting to the video service…" : "Video: opening the camera…";
    case "on":
      return stream?.status === "paused" ? "Video: paused" : "Video: on air";
    default:
      return "Video: not sending";
  }
}

function renderSending(state, text = "") {
  sending = { state, text };
  renderStatus();
}

function renderStatus() {
  $("sending").dataset.sending = sending.state;
  $("sending-text").textContent = sendingText();
  $("sending-retry").hidden = sending.state !== "failed";
  if (!stream) return;
  const withoutVideo = stream.status === "live" && sending.state !== "on";
  $("status").textContent = withoutVideo ? "live — no video yet" : stream.status;
  $("status").dataset.status = stream.status;
  $("status").dataset.video = withoutVideo ? "missing" : "";
}

function onStream(next) {
  if (String(next.id ?? streamId) !== String(streamId)) return;
  if (stream && Number.isInteger(next.version) && Number.isInteger(stream.version) && next.version < stream.version) return; // stale
  stream = { ...(stream ?? {}), ...next };
  $("title").textContent = stream.title ?? "Studio";
  if (Number.isInteger(stream.viewer_count)) $("viewers").textContent = String(stream.viewer_count);
  const allowed = new Set(ALLOWED[stream.status] ?? []);
  for (const action of ["start", "pause", "resume", "end"]) $(action).disabled = !allowed.has(action);
  $("preview-box").dataset.view = stream.status === "live" ? "preview-live" : "preview";
  const hosting = stream.status === "live" || stream.status === "paused";
  if (hosting && !stopHeartbeat) {
    stopHeartbeat = every((config.heartbeat_interval ?? 10) * 1000, async () => onStream((await api.heartbeat(streamId)).stream));
  } else if (!hosting && stopHeartbeat) {
    stopHeartbeat();
    stopHeartbeat = null;
  }
  for (const track of localStream?.getTracks() ?? []) track.enabled = stream.status !== "paused";
  if (stream.status === "ended") {
    stopMedia();
    chatPanel?.closeInput("The stream has ended");
  }
  if (config.media_mode !== "agora") renderLocalSending();
  renderStatus();
}

/** Local mode: the seller's own browser sends, so video is on air whenever the camera is open. */
function renderLocalSending(failure = null) {
  if (failure) renderSending("failed", failure.text);
  else if (sending.state === "failed" && !localStream) renderStatus(); // the camera problem stays shown, live or not
  else if (stream?.status !== "live" && stream?.status !== "paused") renderSending("off");
  else renderSending(localStream ? "on" : "joining");
}

async function openCamera() {
  const cameraId = $("camera").value || undefined;
  const microphoneId = $("microphone").value || undefined;
  const next = await navigator.mediaDevices.getUserMedia({
    video: cameraId ? { deviceId: { exact: cameraId } } : { width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: microphoneId ? { deviceId: { exact: microphoneId } } : true,
  });
  const previous = localStream;
  localStream = next;
  $("preview").srcObject = next;
  $("preview-overlay").hidden = true;
  if (publisher instanceof LocalWebRtcHost) await publisher.setTracks(next);
  for (const track of previous?.getTracks() ?? []) track.stop();
  renderLocalSending();
  const chosen = (kind) => next.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
  await fillDevices(await navigator.mediaDevices.enumerateDevices(), { videoinput: chosen("video"), audioinput: chosen("audio") });
}

/** The device pickers, from MediaDeviceInfo lists (the browser's or the Agora SDK's). */
function fillDevices(devices, chosenByKind) {
  for (const [kind, select] of [["videoinput", $("camera")], ["audioinput", $("microphone")]]) {
    const chosen = chosenByKind[kind];
    select.replaceChildren(
      ...devices.filter((d) => d.kind === kind).map((d, i) => {
        const option = new Option(d.label || `${kind} ${i + 1}`, d.deviceId);
        option.selected = d.deviceId === chosen;
        return option;
      }),
    );
  }
}

/** Agora mode: load the SDK, open camera and microphone for the preview and the pickers. */
async function prepareAgora() {
  try {
    if (!publisher) {
      const AgoraRTC = await loadAgoraSdk();
      publisher = new AgoraPublisher({ AgoraRTC, api, streamId, joinTimeoutMs: config.web?.media?.agoraJoinTimeoutMs });
      playback?.watchMedia(publisher);
      publisher.on("status", (state, info) => {
        if (state === "failed") renderSending("failed", info.text ?? "the video service failed.");
        else if (state === "sending") renderSending("on");
        else if (state === "joining") renderSending("joining");
        else renderSending("off");
      });
    }
    await publisher.openDevices({ cameraId: $("camera").value || undefined, microphoneId: $("microphone").value || undefined });
    // the SDK renders the local camera itself, into the sized preview box (mirrored, its default)
    $("preview").hidden = true;
    $("preview-overlay").hidden = true;
    publisher.previewInto($("preview-box"));
    const { cameras, microphones, camera, microphone } = await publisher.devices();
    fillDevices([...cameras, ...microphones], { videoinput: camera, audioinput: microphone });
    return true;
  } catch (err) {
    playback?.failure(err);
    renderSending("failed", mediaFailure(err).text);
    return false;
  }
}

/** Send video to viewers; in Agora mode a failure shows its reason and "Try again". */
async function startSending() {
  if (config.media_mode === "agora") {
    if (!(await prepareAgora())) return;
    await publisher.start({ cameraId: $("camera").value || undefined, microphoneId: $("microphone").value || undefined }).catch((err) => playback?.failure(err));
  } else if (localStream) {
    publisher.start(localStream);
  }
}

async function retrySending() {
  if (config.media_mode === "agora") {
    if (stream?.status === "live" || stream?.status === "paused") await startSending();
    else await prepareAgora();
    return;
  }
  try {
    await openCamera();
    if (stream?.status === "live" || stream?.status === "paused") await startSending();
  } catch (err) {
    playback?.failure(err);
    renderLocalSending(mediaFailure(err));
  }
}

function stopMedia() {
  publisher?.stop();
  for (const track of localStream?.getTracks() ?? []) track.stop();
  localStream = null;
  $("preview-overlay").hidden = false;
}

async function act(action) {
  showError(errorBox, null);
  try {
    const next = await api.transition(streamId, action);
    onStream(next);
    channel?.send(SELLER_STATE_EVENT, { id: streamId, status: next.status, version: next.version });
    if (action === "start" || action === "resume") await startSending();
  } catch (err) {
    showError(errorBox, err);
  }
}

/** The invited co-hosts, each with "Remove" (which also stops their publishing at once). */
async function renderCohosts() {
  let rows = [];
  try {
    rows = await api.listCohosts(streamId);
  } catch (err) {
    showError(errorBox, err);
  }
  $("cohost-list").replaceChildren(...rows.map((row) => {
    const item = document.createElement("li");
    item.dataset.user = row.user_id;
    const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Remove" });
    remove.addEventListener("click", async () => {
      try {
        await api.removeCohost(streamId, row.user_id);
      } catch (err) {
        showError(errorBox, err);
      }
      await renderCohosts();
    });
    item.append(`${row.user_id} `, remove);
    return item;
  }));
}

async function main() {
  await signInFromApp(session, config).catch((err) => showError(errorBox, `Sign-in failed: ${err.message}`));
  renderSession(session);
  $("watch-link").href = `/watch/${encodeURIComponent(streamId)}`;
  if (!session.signedIn) {
    showError(errorBox, "Sign in as the stream's seller on the home page first.");
    return;
  }
  try {
    onStream(await api.getStream(streamId));
  } catch (err) {
    showError(errorBox, err.status === 404 ? "This stream does not exist." : err);
    return;
  }
  if (stream.seller_id !== session.userId && !["moderator", "admin"].includes(session.role)) {
    showError(errorBox, "Only the stream's seller can use its studio.");
  }

  const { socket, manager } = connectRealtime(config, session, api, {
    noticeSuffix: " Until it is back, viewers may not see your chat, pins or state changes.",
  });
  // the preview is the seller's own camera: a black one means viewers see black too
  // in Agora mode the SDK renders the camera into its own <video> in the preview box
  const previewVideo = () => (config.media_mode === "agora" ? $("preview-box").querySelector("video:not(#preview)") : $("preview"));
  playback = playbackTelemetry({ page: "studio", video: previewVideo, session, manager, config, isPlaying: () => Boolean(localStream) && stream?.status !== "paused" && stream?.status !== "ended" });
  const parts = streamChannel({
    socket, manager, api, config, session, streamId, onStream,
    onViewerCount: (n) => ($("viewers").textContent = String(n)),
    onTokenRenew: () => publisher?.renewNow?.().catch((err) => showError(errorBox, err)),
  });
  const { log, sync, outbox } = parts;
  channel = parts.channel;
  const showcase = new ShowcaseSync({ api, streamId, onChange: () => controls.render() }).bind(channel);
  const controls = mountStudioShowcase({
    form: $("product-form"), list: $("studio-products"), messageBox: $("pinned-message"), api, streamId,
    sync: showcase, onError: (err) => showError(errorBox, err),
  });
  showcase.resync();
  // deal countdowns in the list tick, unless the seller is typing into it (a redraw would lose it)
  every(1000, () => {
    const typing = $("studio-products").contains(document.activeElement)
      || [...$("studio-products").querySelectorAll("input[name=deal_price]")].some((input) => input.value);
    if (!typing) controls.render();
  });
  chatPanel = new ChatPanel({
    root: $("chat"), log, outbox, sync, me: session.userId, maxChars: config.web?.chat_max_chars,
    moderation: {
      pin: (message) => controls.pinMessage(message),
      remove: async (message) => log.applyRows([await api.deleteChat(streamId, message.id)]),
      mute: (userId) => api.sanction(streamId, { user_id: userId, kind: "mute", duration_seconds: 300, reason: "muted by the seller" }),
    },
  });
  if (stream?.status === "ended") chatPanel.closeInput("The stream has ended");
  reactionsPanel({ root: $("reactions"), layer: $("preview-box"), channel, buttons: false, rpm: $("rpm") });
  if (config.media_mode !== "agora") {
    const signaller = new Signaller({ channel, streamId, peerId: peerId("host", session.userId), isHost: true });
    publisher = new LocalWebRtcHost({ signaller, iceServers: config.ice_servers ?? [], maxViewers: config.web?.local_max_viewers ?? 8 });
    publisher.on("viewers", (n) => ($("peers").textContent = String(n)));
    playback.watchMedia(publisher);
    channel.on("state", (state) => {
      if (state === "joined") publisher.announce(); // viewers waiting since a restart say hello again
    });
  }
  channel.subscribe();
  manager.start();

  for (const action of ["start", "pause", "resume"]) $(action).addEventListener("click", () => act(action));
  $("end").addEventListener("click", () => {
    if (confirm("End the stream for everyone?")) act("end");
  });
  const switchDevice = (kind, select) => {
    const change = config.media_mode === "agora" ? publisher?.setDevice(kind, select.value) : openCamera();
    Promise.resolve(change).catch((err) => showError(errorBox, mediaFailure(err).text));
  };
  $("camera").addEventListener("change", () => switchDevice("video", $("camera")));
  $("microphone").addEventListener("change", () => switchDevice("audio", $("microphone")));
  $("sending-retry").addEventListener("click", () => retrySending());
  $("cohost-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = event.target.elements.user.value.trim();
    try {
      await api.inviteCohost(streamId, user);
      event.target.reset();
      showError(errorBox, null);
    } catch (err) {
      showError(errorBox, err);
    }
    await renderCohosts();
  });
  await renderCohosts();

  globalThis.onair = { manager, log, outbox, get publisher() { return publisher; }, socket, onStream, telemetry: playback.telemetry, showcase };
  if (stream.status === "ended") return; // nothing to send, no camera to open
  if (config.media_mode === "agora") {
    await prepareAgora();
  } else {
    try {
      await openCamera();
    } catch (err) {
      playback.failure(err);
      renderLocalSending(mediaFailure(err));
    }
  }
  // a reload of a running studio keeps sending, in either mode
  if (stream.status === "live" || stream.status === "paused") await startSending();
}

main();
