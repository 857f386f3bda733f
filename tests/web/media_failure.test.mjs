// Why video cannot start: every error a media start can throw maps to one stable code and a
// sentence the user can act on (a table, like the codec tables of STYLE.md), and the deadline
// helper turns an endless wait into that error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Failure, MediaError, mediaFailure, withDeadline } from "../../src/onair/web/static/client/media/failure.js";
import { ApiError } from "../../src/onair/web/static/client/api.js";
import { FakeTimers } from "./support/fake_timers.mjs";

const domError = (name) => Object.assign(new Error(name), { name });
const agoraError = (code) => Object.assign(new Error(code), { name: "AgoraRTCException", code });

const TABLE = [
  // thrown                                        code                           retryable  words
  [domError("NotAllowedError"),                    Failure.CAMERA_REFUSED,        true,      /refused.*Allow it/],
  [domError("NotFoundError"),                      Failure.CAMERA_MISSING,        false,     /No camera/],
  [domError("NotReadableError"),                   Failure.CAMERA_BUSY,           true,      /in use by another application/],
  [agoraError("PERMISSION_DENIED"),                Failure.CAMERA_REFUSED,        true,      /refused/],
  [agoraError("CAN_NOT_GET_GATEWAY_SERVER"),       Failure.SERVICE_UNREACHABLE,   true,      /Can't reach the video service/],
  [agoraError("OPERATION_ABORTED"),                Failure.SERVICE_UNREACHABLE,   true,      /Can't reach the video service/],
  [new ApiError(403, { detail: "no" }),            Failure.TOKEN_REFUSED,         false,     /may not watch or publish/],
  [new ApiError(401, {}),                          Failure.TOKEN_REFUSED,         true,      /Sign in again/],
  [new ApiError(429, {}, 7000),                    Failure.TOKEN_REFUSED,         true,      /try again in 7 s/],
  [new ApiError(0, {}),                            Failure.SERVICE_UNREACHABLE,   true,      /Can't reach the server/],
  [new ApiError(503, {}),                          Failure.SERVICE_UNREACHABLE,   true,      /Can't reach the server/],
  [new MediaError(Failure.VIEWER_LIMIT),           Failure.VIEWER_LIMIT,          true,      /full right now/],
  [new MediaError(Failure.TIMEOUT),                Failure.TIMEOUT,               true,      /did not start in time/],
  [{ code: "viewer-limit", reason: "full right now" },  Failure.VIEWER_LIMIT,      true,      /full right now/],
  [new Error("boom"),                              Failure.UNKNOWN,               true,      /could not start \(boom\)\./],
  [undefined,                                      Failure.UNKNOWN,               true,      /could not start/],
];

test("every media error maps to one code, a retry hint and words the user can act on", () => {
  for (const [thrown, code, retryable, words] of TABLE) {
    const failure = mediaFailure(thrown);
    assert.equal(failure.code, code, String(thrown?.name ?? thrown));
    assert.equal(failure.retryable, retryable, code);
    assert.match(failure.text, words);
  }
  assert.deepEqual(new Set(TABLE.map((row) => row[1])), new Set(Object.values(Failure)), "every code is in the table");
});

test("withDeadline: the promise wins before the deadline; after it, abort() runs and the timeout error rejects", async () => {
  const timers = new FakeTimers();
  assert.equal(await withDeadline(Promise.resolve(7), 100, { timers, onTimeout: () => new Error("late") }), 7);
  assert.equal(timers.pending, 0, "the deadline timer is cleared");

  let abort = null;
  const pending = new Promise((_, reject) => (abort = () => reject(new Error("aborted"))));
  let aborted = 0;
  let outcome = null;
  withDeadline(pending, 1000, { timers, abort: () => { aborted += 1; abort(); }, onTimeout: () => new MediaError(Failure.TIMEOUT) })
    .then(() => (outcome = "resolved"), (err) => (outcome = err));
  await timers.advance(999);
  assert.equal(outcome, null);
  await timers.advance(1);
  assert.equal(outcome.code, Failure.TIMEOUT, "the timeout error, not the aborted join's");
  assert.equal(aborted, 1);
});
