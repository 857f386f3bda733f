// What the viewer's player shows, derived from four facts the page learns:
//   stream     — the stream's status from REST or the realtime channel (scheduled|live|paused|ended)
//   connection — the realtime link ("online" or "lost")
//   media      — the media adapter's status (connecting|playing|no-publisher|failed)
//   mediaFailure — why video cannot start ({code, text} of media/failure.js), until it plays or
//                the user tries again
//   error      — a fatal load error (unknown stream, refused, …) until the user retries
//
// Views: connecting · waiting (for the host) · playing · paused (by the host) · reconnecting ·
// unavailable (video cannot start, with the reason) · ended · error. Rules (checked by a
// property test):
//   * "ended" is final: no later event shows anything else (a stale reply cannot revive a stream);
//   * "error" stays until retry; retry clears everything but "ended";
//   * "playing" only when the stream is live, the link is online and media is playing;
//   * "paused" whenever the host paused and the link is online (video is hidden, chat goes on).

export const View = Object.freeze({
  CONNECTING: "connecting",
  WAITING: "waiting",
  PLAYING: "playing",
  PAUSED: "paused",
  RECONNECTING: "reconnecting",
  ENDED: "ended",
  UNAVAILABLE: "unavailable",
  ERROR: "error",
});

export const STREAM_STATUSES = Object.freeze(["scheduled", "live", "paused", "ended"]);
export const MEDIA_STATUSES = Object.freeze(["connecting", "playing", "no-publisher", "failed"]);

export const initialFacts = Object.freeze({ stream: null, connection: "online", media: "connecting", mediaWasPlaying: false, mediaFailure: null, error: null });

/** Apply one event ({type: "stream"|"connection"|"media"|"media-failure"|"media-retry"|"error"|"retry", ...}) to the facts. */
export function reduce(facts, event) {
  if (facts.stream === "ended" && event.type !== "media") {
    return facts; // final
  }
  switch (event.type) {
    case "stream":
      if (!STREAM_STATUSES.includes(event.status)) return facts;
      return { ...facts, stream: event.status };
    case "connection":
      return { ...facts, connection: event.online ? "online" : "lost" };
    case "media":
      if (!MEDIA_STATUSES.includes(event.status)) return facts;
      return {
        ...facts,
        media: event.status,
        mediaWasPlaying: facts.mediaWasPlaying || event.status === "playing",
        mediaFailure: event.status === "playing" ? null : facts.mediaFailure,
      };
    case "media-failure":
      return { ...facts, media: "failed", mediaFailure: { code: String(event.code || "unknown"), text: String(event.text || "") } };
    case "media-retry":
      return { ...facts, media: "connecting", mediaFailure: null };
    case "error":
      return { ...facts, error: String(event.message || "error") };
    case "retry":
      return { ...initialFacts };
    default:
      return facts;
  }
}

export function viewOf(facts) {
  if (facts.stream === "ended") return View.ENDED;
  if (facts.error) return View.ERROR;
  // a lost realtime link costs chat and live updates (the page's banner says so); video that is
  // still playing stays on screen rather than under a "Reconnecting…" overlay
  if (facts.connection === "lost") return facts.stream === "live" && facts.media === "playing" ? View.PLAYING : View.RECONNECTING;
  if (facts.stream === null) return View.CONNECTING;
  if (facts.stream === "paused") return View.PAUSED;
  if (facts.stream === "scheduled") return View.WAITING;
  if (facts.mediaFailure) return View.UNAVAILABLE;
  switch (facts.media) {
    case "playing":
      return View.PLAYING;
    case "no-publisher":
      return View.WAITING;
    case "failed":
      return facts.mediaWasPlaying ? View.RECONNECTING : View.CONNECTING;
    default:
      return facts.mediaWasPlaying ? View.RECONNECTING : View.CONNECTING;
  }
}

/** The machine as an object the page can listen to. */
export class ViewerMachine {
  /** `onView` hears view changes; `onFacts` every event (facts can change under one view). */
  constructor(onView = () => {}, onFacts = () => {}) {
    this.facts = { ...initialFacts };
    this.view = viewOf(this.facts);
    this.onView = onView;
    this.onFacts = onFacts;
  }

  dispatch(event) {
    this.facts = reduce(this.facts, event);
    const view = viewOf(this.facts);
    if (view !== this.view) {
      const previous = this.view;
      this.view = view;
      this.onView(view, previous, this.facts);
    }
    this.onFacts(this.view, this.facts);
    return this.view;
  }
}
