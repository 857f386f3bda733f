// What the watch and studio pages report about playback (client/telemetry.js batches it): the
// player's start and time to first frame, stalls of the <video> and how long they lasted,
// black or frozen pictures seen in sampled frames (client/frame_check.js), realtime and media
// reconnects, media failures by reason, the chosen quality layer and the realtime RTT.

import { realTimers } from "../client/emitter.js";
import { watchFrames } from "../client/frame_check.js";
import { failureReason, pageTelemetry, seconds } from "../client/telemetry.js";

/** `isPlaying()`: whether the picture is meant to move now (not paused by the host, not ended);
 * frames are judged only then. `video` is the <video> element, or a function returning the
 * current one (in Agora mode the SDK creates its own, later). */
export function playbackTelemetry({ page, video, session, manager, isPlaying, config = {} }) {
  const currentVideo = typeof video === "function" ? video : () => video;
  const telemetry = pageTelemetry({ page, getToken: () => session.token, timers: realTimers });
  const options = config.web?.telemetry ?? {};
  const startedAt = performance.now();
  telemetry.record({ kind: "start" });

  let firstFrame = false;
  let stalledAt = null;
  const framing = (event) => {
    if (!(event.target.videoWidth > 0)) return;
    if (!firstFrame) {
      firstFrame = true;
      telemetry.record({ kind: "first_frame", seconds: seconds(performance.now() - startedAt) });
    }
    if (stalledAt !== null) {
      telemetry.record({ kind: "stall", seconds: seconds(performance.now() - stalledAt) });
      stalledAt = null;
    }
  };
  const watched = new WeakSet();
  const watch = (element) => {
    if (!element || watched.has(element)) return;
    watched.add(element);
    element.addEventListener("playing", framing);
    element.addEventListener("resize", framing);
    element.addEventListener("waiting", () => {
      if (firstFrame && stalledAt === null) stalledAt = performance.now();
    });
    if (element.videoWidth > 0) framing({ target: element }); // it was already playing
  };
  watch(currentVideo());
  const stopFrames = watchFrames(currentVideo, {
    timers: realTimers,
    isPlaying: (element) => {
      watch(element); // an element that appeared since (the SDK's) gets the same listeners
      return isPlaying() && !element.paused && !element.ended && element.readyState >= 2;
    },
    intervalMs: options.frame_sample_ms ?? 2000,
    onProblem: (problem) => telemetry.record({ kind: "video_problem", problem }),
  });

  // realtime: a reconnect is being online again after having been online and lost it
  let wasOnline = false;
  let lost = false;
  manager.on("state", () => {
    if (manager.online) {
      if (lost) telemetry.record({ kind: "reconnect", link: "realtime" });
      wasOnline = true;
      lost = false;
    } else if (wasOnline) {
      lost = true;
    }
  });
  manager.on("rtt", (rtt) => telemetry.record({ kind: "rtt", seconds: seconds(rtt) }));

  let mediaFailed = false;
  let lastLayer = null;
  return {
    telemetry,
    /** Media events of a viewer or publisher (the Emitter of client/media/*). */
    watchMedia(media) {
      media.on("status", (status, info) => {
        if (status === "failed") {
          if (!mediaFailed) telemetry.record({ kind: "media_failure", reason: failureReason(info) });
          mediaFailed = true;
        } else if (status === "playing" && mediaFailed) {
          mediaFailed = false;
          telemetry.record({ kind: "reconnect", link: "media" });
        }
      });
      media.on("layer", (layer) => {
        if (layer === lastLayer || !["high", "low", "audio"].includes(layer)) return;
        lastLayer = layer;
        telemetry.record({ kind: "layer", layer });
      });
    },
    failure(err) {
      telemetry.record({ kind: "media_failure", reason: failureReason(err) });
    },
    stop() {
      stopFrames();
      telemetry.close();
    },
  };
}
