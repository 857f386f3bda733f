// The one media interface the viewer's state machine uses, whatever carries the video.
//
// A viewer adapter (LocalWebRtcViewer, AgoraViewer) is an Emitter with:
//   start(): Promise<void>    connect and start receiving; never throws for "no host yet"
//   stop(): Promise<void>     leave and release everything
//   setLayer(layer)           "high" | "low" | "audio" (see video_quality.js)
//   events:
//     "status"  (status, info)  status ∈ MEDIA_STATUSES of viewer_state.js
//     "autoplay-blocked" ()     show "tap for sound" / "tap to play"
//     "layer" (layer)           the received layer actually changed
//
// A publisher adapter (LocalWebRtcHost, AgoraPublisher) has start(localStream), setTracks(stream),
// stop() and emits "viewers" (count of connected peers) where it knows them.
//
// Tracks reach the page only through a TrackRouter (track_router.js), which guarantees that a
// viewer attaches tracks of the stream it watches and nothing else (Property 4).

export const MediaStatus = Object.freeze({
  CONNECTING: "connecting",
  PLAYING: "playing",
  NO_PUBLISHER: "no-publisher",
  FAILED: "failed",
});

/** Play `stream` muted first (browsers allow muted autoplay), then report whether sound is blocked. */
export async function playMutedFirst(video, stream) {
  if (video.srcObject !== stream) video.srcObject = stream;
  video.muted = true;
  video.playsInline = true;
  try {
    await video.play();
  } catch {
    return "blocked";
  }
  return "muted";
}
