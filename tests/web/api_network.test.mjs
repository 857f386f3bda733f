// The REST client tells its page when the server could not be reached at all (the page then
// checks its realtime link at once instead of at the next heartbeat); an HTTP error is not that.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Api, ApiError } from "../../src/onair/web/static/client/api.js";
import { noticeText } from "../../src/onair/web/static/pages/common.js";

test("a fetch that throws is a network error: ApiError status 0 and onNetworkError", async () => {
  const api = new Api({ fetch: async () => { throw new TypeError("Failed to fetch"); } });
  const seen = [];
  api.onNetworkError = (err) => seen.push(err.message);
  await assert.rejects(api.request("GET", "/api/v1/streams"), (err) => err instanceof ApiError && err.status === 0);
  assert.deepEqual(seen, ["Failed to fetch"]);
});

test("an HTTP error reached the server: no network error", async () => {
  const api = new Api({ fetch: async () => new Response(JSON.stringify({ type: "x" }), { status: 404 }) });
  let called = 0;
  api.onNetworkError = () => (called += 1);
  await assert.rejects(api.request("GET", "/api/v1/streams/nope"), (err) => err.status === 404);
  assert.equal(called, 0);
});

test("a proxy's 502/503/504 means onair could not be reached; onair's own 503 (problem+json) does not", async () => {
  for (const [status, type, expected] of [
    [502, "text/html", 1], [503, "text/plain", 1], [504, "", 1],
    [503, "application/problem+json", 0], [500, "text/html", 0], [429, "text/plain", 0],
  ]) {
    const api = new Api({ fetch: async () => new Response("<html>Bad Gateway</html>", { status, headers: type ? { "Content-Type": type } : {} }) });
    let called = 0;
    api.onNetworkError = () => (called += 1);
    await assert.rejects(api.request("GET", "/api/v1/streams"), (err) => err.status === status);
    assert.equal(called, expected, `${status} ${type}`);
  }
});

test("the notice counts down to the next try and never below zero", () => {
  const notice = { message: "Connection lost. Reconnecting…", retryAt: 10_000 };
  assert.equal(noticeText(notice, 0), "Connection lost. Reconnecting… Next try in 10 s.");
  assert.equal(noticeText(notice, 9_001), "Connection lost. Reconnecting… Next try in 1 s.");
  assert.equal(noticeText(notice, 12_000), "Connection lost. Reconnecting… Next try in 0 s.");
  assert.equal(noticeText({ message: "x" }, 0), "x");
  assert.equal(noticeText(null, 0), "");
});
