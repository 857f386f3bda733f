// Playback telemetry: the page's observations (time to first frame, black or frozen video, stalls,
// reconnects, media failures, quality layer, realtime RTT) batched and sent to
// POST /api/v1/telemetry. One batch at most every `flushMs`, at most `maxEvents` per batch (the
// server refuses more), at most `maxQueue` waiting (the oldest go first: telemetry must never
// grow a page's memory while the server is away). On pagehide what is left goes out with
// navigator.sendBeacon, which the browser delivers after the page is gone.
//
// Telemetry is best effort: a refused or failed batch is dropped, never retried (a retry loop
// toward an overloaded server is exactly the flood the server's limits exist for), except that
// a 429 makes the batcher wait for its Retry-After before the next batch.

export const MEDIA_FAILURE_REASONS = Object.freeze([
  "permission-denied", "device-not-found", "autoplay-blocked", "viewer-limit", "peer-lost",
  "token-expired", "sdk-load-failed", "network", "other",
]);

// Free-form failure texts of the media layer (agora.js, local_webrtc.js, getUserMedia errors)
// to the server's fixed set; first match wins.
const REASON_PATTERNS = [
  [/notallowed|permission|denied/i, "permission-denied"],
  [/notfound|no device|device not found|overconstrained/i, "device-not-found"],
  [/autoplay|blocked/i, "autoplay-blocked"],
  [/viewer limit/i, "viewer-limit"],
  [/peer connection|ice|peer lost/i, "peer-lost"],
  [/token/i, "token-expired"],
  [/sdk|script/i, "sdk-load-failed"],
  [/network|reconnecting|timeout|offline|disconnected/i, "network"],
];

// media/failure.js codes to the server's set (the code is known whenever a MediaError was thrown)
const CODE_REASONS = {
  "camera-refused": "permission-denied",
  "camera-missing": "device-not-found",
  "camera-busy": "device-not-found",
  "viewer-limit": "viewer-limit",
  "service-unreachable": "network",
  "timeout": "network",
  "token-refused": "token-expired",
};

/** The fixed reason for a media failure's `info` ({code, reason} or an Error or a string). */
export function failureReason(info) {
  let text, name;
  try {
    const code = info?.code;
    if (typeof code === "string" && Object.hasOwn(CODE_REASONS, code)) return CODE_REASONS[code];
    text = String(info?.reason ?? info?.name ?? info?.message ?? info ?? "");
    name = String(info?.name ?? "");
  } catch {
    return "other"; // an object that cannot be turned into text (e.g. {toString: []})
  }
  for (const [pattern, reason] of REASON_PATTERNS) {
    if (pattern.test(name) || pattern.test(text)) return reason;
  }
  return "other";
}

/** Seconds as the server takes them: finite, 0..3600, rounded to the millisecond. */
export function seconds(ms) {
  const s = Number(ms) / 1000;
  if (!Number.isFinite(s)) return 0;
  return Math.round(Math.min(3600, Math.max(0, s)) * 1000) / 1000;
}

export class TelemetryBatcher {
  /**
   * @param page      "watch" | "studio"
   * @param send      async (body: object) => {status, retryAfterMs?}: one batch over the network
   * @param beacon    (body: object) => boolean: the pagehide path (navigator.sendBeacon)
   * @param timers    {setTimeout, clearTimeout}
   */
  constructor({ page, send, beacon = () => false, timers, flushMs = 10_000, maxEvents = 64, maxQueue = 256 }) {
    this.page = page;
    this._send = send;
    this._beacon = beacon;
    this._timers = timers;
    this.flushMs = flushMs;
    this.maxEvents = maxEvents;
    this.maxQueue = maxQueue;
    this.queue = [];
    this.dropped = 0; // events lost to the queue bound
    this.sent = 0; // events handed to send/beacon
    this._timer = null;
    this._inFlight = false;
    this._holdUntil = 0; // a 429 asked us to wait
    this._closed = false;
  }

  /** Queue one event; a batch goes out within `flushMs`. */
  record(event) {
    this.queue.push(event);
    if (this.queue.length > this.maxQueue) {
      const over = this.queue.length - this.maxQueue;
      this.queue.splice(0, over);
      this.dropped += over;
    }
    this._schedule(this.flushMs);
  }

  _schedule(ms) {
    if (this._timer !== null || this._closed) return;
    this._timer = this._timers.setTimeout(() => {
      this._timer = null;
      this.flush();
    }, ms);
  }

  _take() {
    const events = this.queue.splice(0, this.maxEvents);
    this.sent += events.length;
    return { page: this.page, events };
  }

  /** Send one batch now (if not already sending); more waiting → another batch later. */
  async flush() {
    if (this._inFlight || !this.queue.length) return;
    const wait = this._holdUntil - (this._timers.now?.() ?? Date.now());
    if (wait > 0) {
      this._schedule(wait);
      return;
    }
    this._inFlight = true;
    try {
      const result = await this._send(this._take());
      if (result?.status === 429) {
        this._holdUntil = (this._timers.now?.() ?? Date.now()) + (result.retryAfterMs ?? this.flushMs);
      }
    } catch {
      // dropped: best effort, see the header
    } finally {
      this._inFlight = false;
    }
    if (this.queue.length) this._schedule(this.flushMs);
  }

  reopen() {
    this._closed = false;
    if (this.queue.length) this._schedule(this.flushMs);
  }

  /** The page is going away: everything left, in beacons of at most `maxEvents`. */
  close() {
    this._closed = true;
    if (this._timer !== null) this._timers.clearTimeout(this._timer);
    this._timer = null;
    while (this.queue.length) {
      if (!this._beacon(this._take())) break; // the browser refused (quota): stop trying
    }
  }
}

/** The batcher for a page, sending with fetch and, on pagehide, with sendBeacon. */
export function pageTelemetry({ page, getToken, timers, url = "/api/v1/telemetry", env = globalThis }) {
  const send = async (body) => {
    const headers = { "Content-Type": "application/json" };
    const token = getToken?.();
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await env.fetch(url, { method: "POST", headers, body: JSON.stringify(body), keepalive: true });
    const retry = Number(response.headers.get("Retry-After"));
    return { status: response.status, retryAfterMs: Number.isFinite(retry) && retry > 0 ? retry * 1000 : undefined };
  };
  const beacon = (body) =>
    Boolean(env.navigator?.sendBeacon?.(url, new Blob([JSON.stringify(body)], { type: "application/json" })));
  const batcher = new TelemetryBatcher({ page, send, beacon, timers: { ...timers, now: () => Date.now() } });
  env.addEventListener?.("pagehide", () => batcher.close());
  env.addEventListener?.("pageshow", (event) => {
    if (event.persisted) batcher.reopen(); // back from the back/forward cache: keep reporting
  });
  return batcher;
}
