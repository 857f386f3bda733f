// A stream's product showcase as a client sees it: a pure reducer over the server's versioned
// "showcase" broadcasts (domain/showcase.py change_payload) and REST snapshots (GET
// /streams/{id}/showcase). No I/O, no clock of its own: every function that needs "now" takes the
// local time as an argument, so tests drive it with any schedule and any skew.
//
// Versions are gapless per stream. An event one past the known version applies; an older one is
// dropped; a newer one is held and the state asks for a re-read (`needsResync`), as chat resync
// does. A snapshot replaces everything it is not older than, then held events that follow it apply.
//
// Deal countdowns use the server's clock: each event and snapshot carries `server_time`, and
// offset = server_time − local receive time underestimates the true offset by the delivery delay,
// so the largest of the recent samples is the best estimate (the least delayed message).

export const HELD_MAX = 64; // events held while waiting for a re-read; more → drop, re-read anyway
export const OFFSET_SAMPLES = 8;

export function initialShowcase() {
  return {
    version: null, // unknown until the first snapshot
    products: {}, // id → product
    order: [], // the tray
    pinnedProductId: null,
    pinnedMessage: null,
    held: [], // events newer than version + 1, sorted by version
    needsResync: true,
    offsets: [], // recent server − local samples (ms)
  };
}

function timeOf(value) {
  const ms = typeof value === "string" ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? ms : null;
}

function sampled(state, serverTime, localNow) {
  const at = timeOf(serverTime);
  if (at === null || !Number.isFinite(localNow)) return state.offsets;
  return [...state.offsets, at - localNow].slice(-OFFSET_SAMPLES);
}

function validVersion(v) {
  return Number.isInteger(v) && v >= 0;
}

/** A REST snapshot received at `localNow` (ms since the epoch on this device). */
export function applySnapshot(state, snapshot, localNow) {
  if (!snapshot || !validVersion(snapshot.version) || !Array.isArray(snapshot.products)) return state;
  const offsets = sampled(state, snapshot.server_time, localNow);
  if (state.version !== null && snapshot.version < state.version) return { ...state, offsets };
  const products = {};
  for (const p of snapshot.products) products[p.id] = p;
  const next = {
    ...state,
    version: snapshot.version,
    products,
    order: snapshot.products.map((p) => p.id),
    pinnedProductId: snapshot.pinned_product_id ?? null,
    pinnedMessage: snapshot.pinned_message ?? null,
    held: state.held.filter((e) => e.version > snapshot.version),
    needsResync: false,
    offsets,
  };
  return drain(next);
}

/** A "showcase" broadcast payload received at `localNow`. */
export function applyEvent(state, payload, localNow) {
  if (!payload || !validVersion(payload.version) || !Array.isArray(payload.order)) return state;
  const offsets = sampled(state, payload.server_time, localNow);
  if (state.version !== null && payload.version <= state.version) return { ...state, offsets };
  if (state.version !== null && payload.version === state.version + 1) {
    return drain(step({ ...state, offsets }, payload));
  }
  // unknown base or a gap: hold it and ask for a snapshot
  const held = [...state.held.filter((e) => e.version !== payload.version), payload]
    .sort((a, b) => a.version - b.version)
    .slice(-HELD_MAX);
  return { ...state, held, needsResync: true, offsets };
}

function step(state, e) {
  const products = { ...state.products };
  if (e.removed) delete products[e.removed];
  if (e.product && typeof e.product.id === "string") products[e.product.id] = e.product;
  const order = e.order.filter((id) => id in products);
  // every id in the order must be known; otherwise this client missed something: re-read
  const complete = order.length === e.order.length;
  for (const id of Object.keys(products)) if (!e.order.includes(id)) delete products[id];
  return {
    ...state,
    version: e.version,
    products,
    order,
    pinnedProductId: e.pinned_product_id ?? null,
    pinnedMessage: e.pinned_message ?? null,
    needsResync: state.needsResync || !complete,
  };
}

function drain(state) {
  let s = state;
  while (s.held.length && s.version !== null && s.held[0].version <= s.version + 1) {
    const [first, ...rest] = s.held;
    s = first.version === s.version + 1 ? step({ ...s, held: rest }, first) : { ...s, held: rest };
  }
  return { ...s, needsResync: s.needsResync || s.held.length > 0 };
}

/** What the page shows: the tray in order, the pinned product and message. */
export function showcaseView(state) {
  const products = state.order.map((id) => state.products[id]).filter(Boolean);
  return {
    version: state.version,
    products,
    pinned: state.pinnedProductId ? state.products[state.pinnedProductId] ?? null : null,
    pinnedMessage: state.pinnedMessage,
  };
}

export function serverOffset(state) {
  return state.offsets.length ? Math.max(...state.offsets) : 0;
}

/** The server's time now, by this device's clock and the estimated offset. */
export function serverNow(state, localNow) {
  return localNow + serverOffset(state);
}

/** Milliseconds left of the product's deal (0 when over or none). */
export function dealRemainingMs(state, product, localNow) {
  const ends = timeOf(product?.deal_ends_at);
  if (ends === null || product.deal_price_minor == null) return 0;
  return Math.max(0, ends - serverNow(state, localNow));
}

/** The price to show now: the deal price while the deal runs. */
export function currentPrice(state, product, localNow) {
  const onDeal = dealRemainingMs(state, product, localNow) > 0;
  return { minor: onDeal ? product.deal_price_minor : product.price_minor, onDeal };
}

export function formatPrice(minor, currency, exponent = 2, locale = undefined) {
  const amount = minor / 10 ** exponent;
  try {
    return new Intl.NumberFormat(locale, { style: "currency", currency, minimumFractionDigits: exponent, maximumFractionDigits: exponent }).format(amount);
  } catch {
    return `${amount.toFixed(exponent)} ${currency}`;
  }
}

/** "m:ss" (or "h:mm:ss") for a countdown, rounded up so it reads 0:00 only when over. */
export function formatCountdown(ms) {
  const total = Math.ceil(Math.max(0, ms) / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
