import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { convertRecord, convertValue } from "../../src/onair/web/static/client/change_values.js";

test("Postgres text forms become JSON values by column type; native values pass through", () => {
  const columns = [{ name: "seq", type: "int8" }, { name: "ok", type: "bool" }, { name: "meta", type: "jsonb" }, { name: "body", type: "text" }];
  assert.deepEqual(convertRecord(columns, { seq: "7", ok: "t", meta: '{"a":1}', body: "42" }), { seq: 7, ok: true, meta: { a: 1 }, body: "42" });
  assert.deepEqual(convertRecord(columns, { seq: 7, ok: false, meta: { a: 1 }, body: "x" }), { seq: 7, ok: false, meta: { a: 1 }, body: "x" });
  assert.deepEqual(convertRecord([], { seq: "7" }), { seq: "7" });
  assert.deepEqual(convertRecord(columns, null), {});
});

test("integers round-trip through their text form", () => {
  fc.assert(fc.property(fc.integer(), (n) => assert.equal(convertValue("int8", String(n)), n)));
  fc.assert(fc.property(fc.string(), (s) => {
    const v = convertValue("int4", s);
    assert.ok(typeof v === "number" ? Number.isFinite(v) : v === s);
  }));
});
