// Reserved event names (client/event_names.js, the twin of the server's rule): every spelling a
// client could match onto a reserved name is itself reserved, whatever casing and locale the
// client uses; our Channel never hands a look-alike to a listener of the real name.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Channel } from "../../src/onair/web/static/client/channel.js";
import {
  HOST_ONLY_PREFIXES,
  SERVER_ONLY,
  foldEventName,
  isLookAlike,
  reservedFor,
} from "../../src/onair/web/static/client/event_names.js";
import { CASINGS, LOCALES, allCodePoints, caseVariants, scan, substitutions } from "./support/case_variants.mjs";

const RESERVED = [...SERVER_ONLY, ...HOST_ONLY_PREFIXES];
const ALPHABET = [...new Set(RESERVED.join(""))].join("");
const ALL = allCodePoints();
const VARIANTS = caseVariants(ALPHABET, ALL);

test("the reserved names are their own folded spelling (what the server and hosts send)", () => {
  assert.ok(SERVER_ONLY.has("stream_state") && SERVER_ONLY.has("token_renew") && SERVER_ONLY.has("chat_sanction"));
  assert.deepEqual([...HOST_ONLY_PREFIXES].sort(), ["seller:", "webrtc:"]);
  for (const name of RESERVED) assert.equal(foldEventName(name), name);
});

test("casing each code point alone equals casing them all in one joined string", () => {
  const special = new Set([0x49, 0x69, 0x130, 0x131, 0x3a3, 0x212a, 0x17f, 0xcc, 0x128, 0x1e9e, 0xdf, 0x345]);
  for (const [name, casing] of CASINGS) {
    const cased = casing(ALL.joined);
    scan(cased, ALL.chars.length, (i, start, end) => {
      const x = ALL.chars[i];
      if (i % 89 !== 0 && !special.has(x.codePointAt(0))) return;
      assert.equal(cased.slice(start, end), casing(x), `${name} of U+${x.codePointAt(0).toString(16)}`);
    });
  }
});

test("every code point that any locale's casing turns into a reserved name's character is reserved there", () => {
  assert.ok(VARIANTS.get("i").has("\u0130") && VARIANTS.get("k").has("\u212a") && VARIANTS.get("s").has("\u017f"));
  const subs = substitutions(RESERVED, VARIANTS);
  assert.ok(subs.length > 1000, `only ${subs.length} substitutions`);
  const missed = subs.filter(({ name, variant }) => reservedFor(variant) !== reservedFor(name));
  assert.deepEqual(missed.slice(0, 20).map(({ variant }) => [...variant].map((c) => c.codePointAt(0).toString(16)).join(" ")), []);
});

// What realtime-js does to deliver a broadcast: both names through toLocaleLowerCase (the
// runtime's locale), equal → delivered.
const deliveredBy = (loc, listener, sent) => listener.toLocaleLowerCase(loc) === sent.toLocaleLowerCase(loc);

// mostly plain case flips (what realtime-js matches in every locale), sometimes any variant
const variantOf = (c) => fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(c, c.toUpperCase()) },
  { weight: 1, arbitrary: fc.constantFrom(c, ...(VARIANTS.get(c) ?? [])) },
);
const spelling = (name) => fc.tuple(...[...name].map(variantOf)).map((chars) => chars.join(""));

test("any spelling realtime-js would deliver to a reserved listener is reserved (any locale)", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...SERVER_ONLY).chain((name) => fc.tuple(fc.constant(name), spelling(name))),
      fc.constantFrom(...LOCALES),
      ([name, sent], loc) => {
        if (deliveredBy(loc, name, sent)) assert.equal(reservedFor(sent), "server", sent);
        assert.equal(reservedFor(sent), "server"); // over-approximation: every variant is reserved
      },
    ),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(
      fc.constantFrom(...HOST_ONLY_PREFIXES).chain((p) => spelling(p)),
      fc.string({ maxLength: 12 }),
      (prefix, rest) => assert.equal(reservedFor(prefix + rest), "host"),
    ),
    { numRuns: 3000 },
  );
});

test("combining marks, format characters, fullwidth and compatibility letters cannot hide a name", () => {
  for (const name of ["STREAM_STATE", "Stream_State", "ſtream_state", "ＳＴＲＥＡＭ＿ＳＴＡＴＥ", "stre\u0301am_state",
    "stream\u200d_state", "to\u212aen_renew", "v\u0130ewer_count", "v\u0131ewer_count", "chat_\u{1d42c}anction", "TOKEN_RENEW"]) {
    assert.equal(reservedFor(name), "server", name);
  }
  for (const name of ["WEBRTC:signal", "Seller:state", "ｗｅｂｒｔｃ：signal", "web\u0280tc:x", "\u0455eller:state"]) {
    // U+0280 and the Cyrillic dze look alike but no casing makes them ASCII: open, like any name
    assert.equal(reservedFor(name), /\u0280|\u0455/.test(name) ? null : "host", name);
  }
  for (const name of ["reaction", "signal", "cursor", "stream", "state", "webrtc", "seller", "stream_state2",
    "my_stream_state", "stream state", "webrtc_signal", "sellers:x", "REACTION", "Signal", "café"]) {
    assert.equal(reservedFor(name), null, name);
  }
});

test("the ASCII fast path and the per-code-point path agree", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), (a, b) => {
      const mixed = `${a}\u00e9${b}`; // forces the slow path; é folds to e
      assert.equal(foldEventName(mixed), `${foldEventName(a)}e${foldEventName(b)}`);
    }),
  );
});

function channelWith(events) {
  const socket = { isOpen: () => false, timers: { setTimeout() {}, clearTimeout() {} } };
  const channel = new Channel(socket, "stream:s1");
  const got = [];
  for (const event of events) channel.listen("broadcast", { event }, (m) => got.push([event, m.event]));
  const deliver = (event) => channel.handle({ join_ref: null, event: "broadcast", payload: { type: "broadcast", event, payload: {} } });
  return { got, deliver };
}

test("a look-alike of a server or host event never reaches a listener; open names match in any case", () => {
  const { got, deliver } = channelWith(["stream_state", "token_renew", "webrtc:signal", "seller:state", "reaction"]);
  for (const forged of ["STREAM_STATE", "Stream_state", "ſtream_state", "ＳＴＲＥＡＭ_ＳＴＡＴＥ", "TOKEN_RENEW",
    "to\u212aen_renew", "WEBRTC:signal", "webrtc:SIGNAL", "Seller:state", "seller\uff1astate"]) {
    assert.equal(isLookAlike(forged), true, forged);
    deliver(forged);
  }
  assert.deepEqual(got, []);
  for (const real of ["stream_state", "token_renew", "webrtc:signal", "seller:state", "REACTION", "reaction"]) deliver(real);
  assert.deepEqual(got, [
    ["stream_state", "stream_state"], ["token_renew", "token_renew"], ["webrtc:signal", "webrtc:signal"],
    ["seller:state", "seller:state"], ["reaction", "REACTION"], ["reaction", "reaction"],
  ]);
});

test("the property holds for random spellings through the Channel too", () => {
  fc.assert(
    fc.property(fc.constantFrom(...SERVER_ONLY, "webrtc:signal", "seller:state").chain((n) => fc.tuple(fc.constant(n), spelling(n))), ([name, sent]) => {
      const { got, deliver } = channelWith([name]);
      deliver(sent);
      assert.deepEqual(got, sent === name ? [[name, name]] : []);
    }),
    { numRuns: 2000 },
  );
});
