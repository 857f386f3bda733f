// Why video cannot start, in words a buyer or seller can act on. Every media failure the pages
// show goes through `mediaFailure()`, which maps what the browser, the SDK or our API threw to one
// code, a sentence and whether trying again can help. Codes are stable: tests, telemetry and the
// page's data-failure attribute use them.

export const Failure = Object.freeze({
  VIEWER_LIMIT: "viewer-limit", // local mode: the seller's browser already sends to its maximum
  CAMERA_REFUSED: "camera-refused", // the user or the browser's policy said no
  CAMERA_MISSING: "camera-missing", // no such device
  CAMERA_BUSY: "camera-busy", // another application holds it
  SERVICE_UNREACHABLE: "service-unreachable", // Agora's SDK or servers cannot be reached
  TOKEN_REFUSED: "token-refused", // our server refused the media token
  TIMEOUT: "timeout", // nothing to show after the first-frame deadline
  UNKNOWN: "unknown",
});

const TEXT = {
  [Failure.VIEWER_LIMIT]: "This stream is full right now. You'll get in as soon as a place is free.",
  [Failure.CAMERA_REFUSED]: "Camera or microphone access was refused. Allow it for this site in the browser's settings, then try again.",
  [Failure.CAMERA_MISSING]: "No camera or microphone was found. Connect one, then try again.",
  [Failure.CAMERA_BUSY]: "The camera or microphone is in use by another application. Close it, then try again.",
  [Failure.SERVICE_UNREACHABLE]: "Can't reach the video service. Check the connection, then try again.",
  [Failure.TIMEOUT]: "The video did not start in time.",
  [Failure.UNKNOWN]: "The video could not start.",
};

/** An Error that already knows its failure code (thrown by the media adapters). */
export class MediaError extends Error {
  constructor(code, message = TEXT[code] ?? TEXT[Failure.UNKNOWN], { cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = "MediaError";
    this.code = code;
  }
}

const CAMERA_ERRORS = {
  NotAllowedError: Failure.CAMERA_REFUSED,
  SecurityError: Failure.CAMERA_REFUSED,
  PermissionDeniedError: Failure.CAMERA_REFUSED,
  NotFoundError: Failure.CAMERA_MISSING,
  OverconstrainedError: Failure.CAMERA_MISSING,
  NotReadableError: Failure.CAMERA_BUSY,
  AbortError: Failure.CAMERA_BUSY,
  // Agora's SDK wraps getUserMedia's errors in its own codes (AgoraRTCErrorCode)
  PERMISSION_DENIED: Failure.CAMERA_REFUSED,
  NOT_SUPPORTED: Failure.CAMERA_MISSING,
  DEVICE_NOT_FOUND: Failure.CAMERA_MISSING,
  MEDIA_OPTION_INVALID: Failure.CAMERA_MISSING,
};

/** Agora error codes that mean its servers could not be reached (AgoraRTCErrorCode). */
const UNREACHABLE = new Set([
  "CAN_NOT_GET_GATEWAY_SERVER", "NETWORK_ERROR", "NETWORK_TIMEOUT", "NETWORK_RESPONSE_ERROR",
  "WS_ABORT", "WS_DISCONNECT", "WS_ERR", "OPERATION_ABORTED", "SDK_LOAD_FAILED",
]);

/** The reason a {status, detail} from our API gives, worded for the page. */
function tokenText(err) {
  const status = err.status;
  if (status === 401) return "Your sign-in has expired, so the server refused video access. Sign in again.";
  if (status === 403) return "You may not watch or publish this stream.";
  if (status === 429) {
    const waitMs = Number(err.retryAfterMs);
    return `Too many video requests; try again ${Number.isFinite(waitMs) && waitMs > 0 ? `in ${Math.ceil(waitMs / 1000)} s` : "shortly"}.`;
  }
  return `The server refused video access (${status}${err.message ? `: ${err.message}` : ""}).`;
}

/**
 * {code, text, retryable} for anything a media start or a device open threw. `retryable` says
 * whether the same action may succeed later without the user changing something first.
 */
export function mediaFailure(err) {
  // a MediaError, or an adapter's status info {code, reason}, already knows its code
  if (err && Object.values(Failure).includes(err.code)) {
    return { code: err.code, text: err.text || err.reason || err.message || TEXT[err.code], retryable: err.code !== Failure.CAMERA_MISSING };
  }
  const name = err?.name;
  const code = err?.code;
  const camera = CAMERA_ERRORS[name] ?? CAMERA_ERRORS[code];
  if (camera) return { code: camera, text: TEXT[camera], retryable: camera !== Failure.CAMERA_MISSING };
  if (Number.isInteger(err?.status) && err.status >= 400 && err.status < 500) {
    return { code: Failure.TOKEN_REFUSED, text: tokenText(err), retryable: err.status === 429 || err.status === 401 };
  }
  if (Number.isInteger(err?.status)) {
    // no answer (0) or a server error: our own server, not the video service, is what failed
    return { code: Failure.SERVICE_UNREACHABLE, text: "Can't reach the server for video access. Check the connection, then try again.", retryable: true };
  }
  if (UNREACHABLE.has(code)) {
    return { code: Failure.SERVICE_UNREACHABLE, text: TEXT[Failure.SERVICE_UNREACHABLE], retryable: true };
  }
  const detail = err?.message ? ` (${err.message})` : "";
  return { code: Failure.UNKNOWN, text: `${TEXT[Failure.UNKNOWN].replace(/\.$/, "")}${detail}.`, retryable: true };
}

export function failureText(code) {
  return TEXT[code] ?? TEXT[Failure.UNKNOWN];
}

/**
 * Settle with `promise`, or after `ms` call `abort()` (which must make the promise settle — e.g.
 * Agora's `leave()` rejects a pending join with OPERATION_ABORTED) and reject with `onTimeout()`.
 */
export function withDeadline(promise, ms, { timers, abort = () => {}, onTimeout }) {
  let timer = null;
  const deadline = new Promise((_, reject) => {
    timer = timers.setTimeout(() => {
      timer = null;
      reject(onTimeout());
      Promise.resolve().then(abort).catch(() => {});
    }, ms);
  });
  // the loser's rejection is handled here, so neither side leaves an unhandled rejection
  promise.catch(() => {});
  return Promise.race([promise, deadline]).finally(() => {
    if (timer !== null) timers.clearTimeout(timer);
  });
}
