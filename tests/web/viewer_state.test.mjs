// The viewer's state machine: explicit views for every situation, "ended" final, "error" sticky
// until retry, "playing" only when the stream is live and video plays — even while the realtime link
// is down, which a banner reports instead of an overlay (part of Property 9's initialization rules).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { initialFacts, reduce, viewOf, View, ViewerMachine, STREAM_STATUSES, MEDIA_STATUSES } from "../../src/onair/web/static/client/viewer_state.js";

const event = fc.oneof(
  fc.record({ type: fc.constant("stream"), status: fc.constantFrom(...STREAM_STATUSES, "bogus") }),
  fc.record({ type: fc.constant("media"), status: fc.constantFrom(...MEDIA_STATUSES) }),
  fc.record({ type: fc.constant("connection"), online: fc.boolean() }),
  fc.record({ type: fc.constant("error"), message: fc.string() }),
  fc.record({ type: fc.constant("retry") }),
  fc.record({ type: fc.constant("media-failure"), code: fc.constantFrom("viewer-limit", "timeout", "service-unreachable"), text: fc.string() }),
  fc.record({ type: fc.constant("media-retry") }),
);

test("Property 9: viewer initialization and adaptation — the viewer's view follows its rules for any event sequence", () => {
  fc.assert(
    fc.property(fc.array(event, { maxLength: 60 }), (events) => {
      let facts = { ...initialFacts };
      assert.equal(viewOf(facts), View.CONNECTING, "a fresh viewer starts in connecting");
      let ended = false;
      let errored = false;
      for (const e of events) {
        facts = reduce(facts, e);
        const view = viewOf(facts);
        assert.ok(Object.values(View).includes(view));
        if (e.type === "stream" && e.status === "ended") ended = true;
        if (ended) {
          assert.equal(view, View.ENDED, "ended must be final");
          continue;
        }
        if (e.type === "error") errored = true;
        if (e.type === "retry") errored = false;
        if (errored) assert.equal(view, View.ERROR);
        if (view === View.PLAYING) {
          assert.ok(facts.stream === "live" && facts.media === "playing");
        }
        if (!errored && facts.stream === "paused" && facts.connection === "online") assert.equal(view, View.PAUSED);
        if (!errored && facts.connection === "lost") {
          const videoStillPlays = facts.stream === "live" && facts.media === "playing";
          assert.equal(view, videoStillPlays ? View.PLAYING : View.RECONNECTING, "the overlay only when video is gone");
        }
        // a reason why video cannot start is never hidden behind an endless "Connecting…"
        if (!errored && facts.connection === "online" && facts.stream === "live" && facts.mediaFailure) {
          assert.equal(view, View.UNAVAILABLE);
        }
        if (view === View.UNAVAILABLE) assert.ok(facts.mediaFailure && facts.stream === "live" && facts.connection === "online");
        if (e.type === "media" && e.status === "playing") assert.equal(facts.mediaFailure, null, "video that plays clears the failure");
      }
    }),
  );
});

test("a media failure before the first frame shows its reason until video plays or the user tries again", () => {
  const m = new ViewerMachine();
  m.dispatch({ type: "stream", status: "live" });
  assert.equal(m.view, View.CONNECTING);
  assert.equal(m.dispatch({ type: "media-failure", code: "viewer-limit", text: "full" }), View.UNAVAILABLE);
  assert.equal(m.dispatch({ type: "media", status: "connecting" }), View.UNAVAILABLE, "a retrying adapter does not hide the reason");
  assert.equal(m.dispatch({ type: "stream", status: "paused" }), View.PAUSED, "the host's pause says more than a failure");
  assert.equal(m.dispatch({ type: "stream", status: "live" }), View.UNAVAILABLE);
  assert.equal(m.dispatch({ type: "media-retry" }), View.CONNECTING);
  m.dispatch({ type: "media-failure", code: "timeout", text: "late" });
  assert.equal(m.dispatch({ type: "media", status: "playing" }), View.PLAYING);
  assert.equal(m.facts.mediaFailure, null);
});

test("typical viewer journey", () => {
  const seen = [];
  const m = new ViewerMachine((v) => seen.push(v));
  m.dispatch({ type: "stream", status: "scheduled" });
  m.dispatch({ type: "stream", status: "live" });
  m.dispatch({ type: "media", status: "no-publisher" });
  m.dispatch({ type: "media", status: "playing" });
  m.dispatch({ type: "stream", status: "paused" });
  m.dispatch({ type: "stream", status: "live" });
  m.dispatch({ type: "connection", online: false });
  m.dispatch({ type: "connection", online: true });
  m.dispatch({ type: "media", status: "failed" });
  m.dispatch({ type: "media", status: "playing" });
  m.dispatch({ type: "stream", status: "ended" });
  m.dispatch({ type: "stream", status: "live" });
  // losing the realtime link while video plays keeps "playing"; losing the video does not
  assert.deepEqual(seen, ["waiting", "connecting", "waiting", "playing", "paused", "playing", "reconnecting", "playing", "ended"]);
});
