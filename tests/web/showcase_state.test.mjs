// The showcase reducer (client/showcase_state.js): versioned events, gap → re-read, snapshots,
// and deal countdowns against the server's clock (issue 14).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  applyEvent, applySnapshot, currentPrice, dealRemainingMs, formatCountdown, formatPrice, initialShowcase, showcaseView,
} from "../../src/onair/web/static/client/showcase_state.js";

const T0 = Date.parse("2026-12-05T08:00:00Z");
const iso = (ms) => new Date(ms).toISOString();

// A small server: the same moves as domain/showcase.py, producing a snapshot per version and one
// change payload per version (the product changed or the id removed, plus the layout).
function serverHistory(ops) {
  let products = [];
  let pinned = null;
  let message = null;
  let n = 0;
  const snapshots = [snap(0)];
  const events = [null];
  function snap(version) {
    return { version, server_time: iso(T0 + version * 1000), products: products.map((p) => ({ ...p })), pinned_product_id: pinned, pinned_message: message };
  }
  for (const op of ops) {
    let product = null;
    let removed = null;
    const target = products.length ? products[op.pick % products.length] : null;
    if (op.kind === "attach" || !target) {
      product = { id: `p${n++}`, title: `t${op.pick}`, price_minor: 100 + op.pick, currency: "EUR", currency_exponent: 2, sold_out: false, deal_price_minor: null, deal_ends_at: null };
      products = [...products, product];
    } else if (op.kind === "remove") {
      products = products.filter((p) => p !== target);
      if (pinned === target.id) pinned = null;
      removed = target.id;
    } else if (op.kind === "pin") {
      pinned = target.id;
      product = target;
    } else if (op.kind === "deal") {
      product = { ...target, deal_price_minor: 50, deal_ends_at: iso(T0 + 60_000 + op.pick * 1000) };
      products = products.map((p) => (p === target ? product : p));
    } else if (op.kind === "move") {
      const rest = products.filter((p) => p !== target);
      rest.splice(op.pick % (rest.length + 1), 0, target);
      products = rest;
      product = target;
    } else {
      message = op.kind === "message" ? { message_id: `m${op.pick}`, body: `hello ${op.pick}` } : null;
    }
    const version = snapshots.length;
    snapshots.push(snap(version));
    events.push({ version, server_time: iso(T0 + version * 1000), order: products.map((p) => p.id), pinned_product_id: pinned, pinned_message: message, product: product && { ...product }, removed });
  }
  return { snapshots, events };
}

const op = fc.record({ kind: fc.constantFrom("attach", "attach", "remove", "pin", "deal", "move", "message", "unpin_message"), pick: fc.nat(20) });
// per client: when it joins (a snapshot at that version), then per event one fate
const fate = fc.constantFrom("deliver", "deliver", "deliver", "drop", "duplicate", "swap", "reconnect");
const client = fc.record({ joinAt: fc.nat(40), fates: fc.array(fate, { maxLength: 45 }), leaveAt: fc.option(fc.nat(40)) });

function expected(snapshot) {
  return showcaseView(applySnapshot(initialShowcase(), snapshot, T0));
}

test("Property (issue 14): every client's showcase converges to the server's under any join/leave/reconnect/missed-event schedule", () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), fc.array(client, { minLength: 1, maxLength: 4 }), (ops, clients) => {
      const { snapshots, events } = serverHistory(ops);
      const last = snapshots.length - 1;
      for (const c of clients) {
        // a client that left rejoins later (a new page): only its last session matters, and it
        // starts from a fresh state with a snapshot, as the watch page does
        const join = Math.min(c.joinAt, last);
        let s = initialShowcase();
        // events may arrive before the snapshot that the join asked for
        const early = events[join + 1];
        if (early) s = applyEvent(s, early, T0);
        assert.ok(s.needsResync || join + 1 > last);
        s = applySnapshot(s, snapshots[join], T0);
        let pending = null;
        for (let v = join + 1; v <= last; v++) {
          const f = c.fates[v - join - 1] ?? "deliver";
          const e = events[v];
          if (v === last) {
            if (pending) s = applyEvent(s, pending, T0);
            s = applyEvent(s, e, T0); // the events settle: the last one arrives
          } else if (f === "deliver") {
            s = applyEvent(s, e, T0);
            if (pending) s = applyEvent(s, pending, T0);
            pending = null;
          } else if (f === "duplicate") {
            s = applyEvent(applyEvent(s, e, T0), e, T0);
          } else if (f === "swap") {
            if (pending) s = applyEvent(s, pending, T0);
            pending = e; // delivered after the next one
          } else if (f === "reconnect") {
            s = applySnapshot(s, snapshots[v], T0); // rejoin re-reads at the current version
          }
          // "drop": nothing arrives
          if (s.needsResync && f === "drop" && c.leaveAt !== null) {
            s = applySnapshot(s, snapshots[v], T0); // the re-read the gap asked for
          }
        }
        if (pending) s = applyEvent(s, pending, T0);
        if (s.needsResync) s = applySnapshot(s, snapshots[last], T0);
        assert.equal(s.needsResync, false);
        assert.deepEqual(showcaseView(s), expected(snapshots[last]));
      }
    }),
    { numRuns: 300 },
  );
});

test("a gap holds newer events and asks for a re-read; an older snapshot never rolls back", () => {
  const { snapshots, events } = serverHistory([{ kind: "attach", pick: 1 }, { kind: "attach", pick: 2 }, { kind: "pin", pick: 0 }]);
  let s = applySnapshot(initialShowcase(), snapshots[0], T0);
  s = applyEvent(s, events[2], T0);
  assert.equal(s.needsResync, true);
  assert.equal(s.version, 0);
  s = applySnapshot(s, snapshots[1], T0); // the re-read; the held event 2 applies on top
  assert.equal(s.version, 2);
  assert.equal(s.needsResync, false);
  s = applyEvent(s, events[3], T0);
  const stale = applySnapshot(s, snapshots[1], T0);
  assert.deepEqual(showcaseView(stale), showcaseView(s));
  assert.equal(showcaseView(s).pinned.id, "p0");
  // garbage is ignored
  assert.equal(applyEvent(s, { version: "x" }, T0), s);
  assert.equal(applySnapshot(s, null, T0), s);
});

test("Property (issue 14): deal countdowns of clients with skewed clocks agree within the delivery delay bound", () => {
  const MAX_DELAY = 800;
  fc.assert(
    fc.property(
      fc.array(fc.record({ skew: fc.integer({ min: -86_400_000, max: 86_400_000 }), delays: fc.array(fc.nat(MAX_DELAY), { minLength: 1, maxLength: 5 }) }), { minLength: 2, maxLength: 5 }),
      fc.nat(120_000),
      (clients, later) => {
        const endsAt = T0 + 300_000;
        const product = { id: "p", price_minor: 1000, deal_price_minor: 500, deal_ends_at: iso(endsAt), currency: "EUR" };
        const remaining = clients.map(({ skew, delays }) => {
          let s = applySnapshot(initialShowcase(), { version: 0, server_time: iso(T0), products: [], pinned_product_id: null }, T0 + delays[0] + skew);
          // later events, each sent at server time T0 + i s and received after its delay
          delays.slice(1).forEach((d, i) => {
            const sent = T0 + (i + 1) * 1000;
            s = applyEvent(s, { version: i + 1, server_time: iso(sent), order: [], pinned_product_id: null, product: null, removed: null }, sent + d + skew);
          });
          const realNow = T0 + 10_000 + later;
          return dealRemainingMs(s, product, realNow + skew);
        });
        const truth = Math.max(0, endsAt - (T0 + 10_000 + later));
        for (const r of remaining) {
          assert.ok(r >= truth && r - truth <= MAX_DELAY, `remaining ${r} vs true ${truth}`);
        }
        assert.ok(Math.max(...remaining) - Math.min(...remaining) <= MAX_DELAY);
      },
    ),
    { numRuns: 300 },
  );
});

test("prices and countdowns format for people", () => {
  const s = applySnapshot(initialShowcase(), { version: 0, server_time: iso(T0), products: [] }, T0 - 5000);
  const product = { price_minor: 1299, deal_price_minor: 999, deal_ends_at: iso(T0 + 65_000), currency: "EUR" };
  assert.equal(dealRemainingMs(s, product, T0 - 5000), 65_000);
  assert.deepEqual(currentPrice(s, product, T0 - 5000), { minor: 999, onDeal: true });
  assert.deepEqual(currentPrice(s, product, T0 + 61_000), { minor: 1299, onDeal: false });
  assert.equal(formatCountdown(65_000), "1:05");
  assert.equal(formatCountdown(3_600_500), "1:00:01");
  assert.equal(formatCountdown(-3), "0:00");
  assert.equal(formatPrice(1299, "EUR", 2, "en-US"), "€12.99");
  assert.equal(formatPrice(500, "JPY", 0, "en-US"), "¥500");
});
