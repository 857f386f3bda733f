import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decode, encode, ProtocolError, VSN_1, VSN_2 } from "../../src/onair/web/static/client/serializer.js";

// Golden cases from spec/supabase-realtime.md §1.5, §2.1, §2.2, §3.7 (exact wire text).
const CASES = [
  [{ join_ref: null, ref: "9", topic: "phoenix", event: "heartbeat", payload: {} }, VSN_2, '[null,"9","phoenix","heartbeat",{}]'],
  [{ join_ref: "6", ref: "11", topic: "realtime:room1", event: "phx_leave", payload: {} }, VSN_2, '["6","11","realtime:room1","phx_leave",{}]'],
  [
    { join_ref: null, ref: null, topic: "realtime:room1", event: "broadcast", payload: { type: "broadcast", event: "cursor", payload: { x: 1 } } },
    VSN_2,
    '[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]',
  ],
  [{ join_ref: null, ref: null, topic: "phoenix", event: "heartbeat", payload: {} }, VSN_1, '{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null,"join_ref":null}'],
];

test("encode matches the golden wire text", () => {
  for (const [message, vsn, wire] of CASES) assert.equal(encode(message, vsn), wire);
});

test("decode inverts the golden wire text", () => {
  for (const [message, vsn, wire] of CASES) assert.deepEqual(decode(wire, vsn), message);
});

test("vsn 1.0.0 server replies without join_ref decode with join_ref null", () => {
  const wire = '{"topic":"realtime:room1","event":"phx_reply","payload":{"status":"ok","response":{"postgres_changes":[]}},"ref":"1"}';
  assert.deepEqual(decode(wire, VSN_1), {
    join_ref: null,
    ref: "1",
    topic: "realtime:room1",
    event: "phx_reply",
    payload: { status: "ok", response: { postgres_changes: [] } },
  });
});

test("binary kind 4 user broadcast decodes like the JS client (§2.3)", () => {
  const parts = [Buffer.from([0x04, 0x0e, 0x06, 0x00, 0x01]), Buffer.from("realtime:room1"), Buffer.from("cursor"), Buffer.from('{"from":"js"}')];
  const frame = new Uint8Array(Buffer.concat(parts));
  assert.deepEqual(decode(frame.buffer, VSN_2), {
    join_ref: null,
    ref: null,
    topic: "realtime:room1",
    event: "broadcast",
    payload: { type: "broadcast", event: "cursor", payload: { from: "js" } },
  });
});

test("garbage, truncated and wrongly shaped frames raise ProtocolError, never anything else", () => {
  const bad = ["", "nope", "[1,2]", '{"topic":1,"event":"x"}', '[null,null,"t","e"]', "[null,5,\"t\",\"e\",{}]"];
  for (const frame of bad) assert.throws(() => decode(frame, VSN_2), ProtocolError);
  assert.throws(() => decode('["a"]', VSN_1), ProtocolError);
  assert.throws(() => decode(new Uint8Array([4, 10, 1, 0, 1, 65]).buffer), ProtocolError);
  assert.throws(() => decode(new Uint8Array([0, 1]).buffer), ProtocolError);
});

test("round trip for arbitrary messages in both serializers", () => {
  const ref = fc.option(fc.string(), { nil: null });
  const message = fc.record({ join_ref: ref, ref, topic: fc.string(), event: fc.string(), payload: fc.jsonValue() });
  fc.assert(
    fc.property(message, fc.constantFrom(VSN_1, VSN_2), (m, vsn) => {
      const normal = JSON.parse(JSON.stringify(m));
      assert.deepEqual(decode(encode(m, vsn), vsn), normal);
    }),
  );
});

test("arbitrary bytes never crash the decoder", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.string(), (bytes, text) => {
      for (const frame of [bytes.buffer, text]) {
        try {
          decode(frame, VSN_2);
        } catch (err) {
          assert.ok(err instanceof ProtocolError, String(err));
        }
      }
    }),
  );
});
