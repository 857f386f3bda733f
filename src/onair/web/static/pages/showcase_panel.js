// The showcase on the pages: ShowcaseSync keeps a showcase_state.js state equal to the server's
// (live "showcase" broadcasts; a REST re-read on a version gap, on every (re)join and when the
// server's live delivery comes back), and the render functions draw it with textContent and DOM
// nodes only (never innerHTML). The watch page shows the pinned product card, the tray and the
// pinned chat message; the studio adds the controls (studio.js).

import {
  applyEvent, applySnapshot, currentPrice, dealRemainingMs, formatCountdown, formatPrice, initialShowcase, showcaseView,
} from "../client/showcase_state.js";

export const SHOWCASE_EVENT = "showcase";
const PLACEHOLDER = "/static/showcase/placeholder.svg";

export class ShowcaseSync {
  constructor({ api, streamId, onChange = () => {}, now = () => Date.now() }) {
    this.api = api;
    this.streamId = streamId;
    this.onChange = onChange;
    this.now = now;
    this.state = initialShowcase();
    this._running = null;
    this._again = false;
    this.rereads = 0;
  }

  bind(channel) {
    channel.listen("broadcast", { event: SHOWCASE_EVENT }, (message) => this.event(message.payload));
    channel.on("state", (state) => {
      if (state === "joined") this.resync();
    });
    channel.on("delivery", ({ live }) => {
      if (live) this.resync();
    });
    return this;
  }

  event(payload) {
    this._set(applyEvent(this.state, payload, this.now()));
  }

  /** Apply a snapshot the page got itself (a change's REST answer). */
  snapshot(snapshot) {
    this._set(applySnapshot(this.state, snapshot, this.now()));
  }

  _set(next) {
    if (next === this.state) return;
    this.state = next;
    this.onChange(showcaseView(next), next);
    if (next.needsResync) this.resync();
  }

  /** Re-read the showcase over REST; single-flight (a request meanwhile runs it once more). */
  resync() {
    if (this._running) {
      this._again = true;
      return this._running;
    }
    this._running = (async () => {
      do {
        this._again = false;
        this.rereads += 1;
        try {
          this.snapshot(await this.api.getShowcase(this.streamId));
        } catch {
          // the next join, delivery notice or gap tries again
        }
      } while (this._again);
    })().finally(() => {
      this._running = null;
    });
    return this._running;
  }
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** The card of one product: image, title, price (deal price and countdown while a deal runs),
 *  stock, sold-out state and a Buy link to the shop (new tab, no opener, no referrer). */
export function productCard(product, state, localNow, { pinned = false } = {}) {
  const card = el("article", pinned ? "product-card pinned" : "product-card");
  card.dataset.productId = product.id;
  const img = el("img", "product-image");
  img.alt = "";
  img.loading = "lazy";
  img.referrerPolicy = "no-referrer";
  img.src = safeUrl(product.image_url) ?? PLACEHOLDER;
  img.addEventListener("error", () => (img.src = PLACEHOLDER), { once: true });
  const body = el("div", "product-body");
  body.append(el("h2", "product-title", product.title));
  const price = el("p", "product-price");
  const now = currentPrice(state, product, localNow);
  const exponent = product.currency_exponent ?? 2;
  const shown = el("span", "price-now", formatPrice(now.minor, product.currency, exponent));
  price.append(shown);
  if (now.onDeal) {
    price.append(" ", el("s", "price-was", formatPrice(product.price_minor, product.currency, exponent)));
    const countdown = el("span", "deal-countdown", formatCountdown(dealRemainingMs(state, product, localNow)));
    countdown.setAttribute("role", "timer");
    price.append(" ", countdown);
  }
  body.append(price);
  if (product.sold_out || product.stock === 0) {
    card.classList.add("sold-out");
    body.append(el("p", "product-stock", "Sold out"));
  } else if (Number.isInteger(product.stock)) {
    body.append(el("p", "product-stock", `${product.stock} left`));
  }
  const url = safeUrl(product.product_url);
  if (url && !(product.sold_out || product.stock === 0)) {
    const buy = el("a", "buy", "Buy");
    buy.href = url;
    buy.target = "_blank";
    buy.rel = "noopener noreferrer";
    body.append(buy);
  }
  card.append(img, body);
  return card;
}

/** Redraw the watch page's showcase: pinned card, tray, pinned message. */
export function renderShowcase({ pinnedBox, trayBox, messageBox }, view, state, localNow) {
  pinnedBox.replaceChildren(...(view.pinned ? [productCard(view.pinned, state, localNow, { pinned: true })] : []));
  pinnedBox.hidden = !view.pinned;
  if (trayBox) {
    const items = view.products.filter((p) => p.id !== view.pinned?.id).map((p) => {
      const li = el("li");
      li.append(productCard(p, state, localNow));
      return li;
    });
    trayBox.replaceChildren(...items);
    trayBox.hidden = items.length === 0;
  }
  renderPinnedMessage(messageBox, view.pinnedMessage);
}

export function renderPinnedMessage(box, message) {
  if (!box) return;
  box.hidden = !message;
  if (!message) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(el("span", "pin-label", "Pinned"), el("span", "who", message.sender_id), el("span", "body", message.body));
}

/** Tick the countdowns without redrawing everything (4 times a second). */
export function tickCountdowns(root, sync, localNow) {
  for (const card of root.querySelectorAll(".product-card")) {
    const product = sync.state.products[card.dataset.productId];
    const countdown = card.querySelector(".deal-countdown");
    if (!product || !countdown) continue;
    const left = dealRemainingMs(sync.state, product, localNow);
    countdown.textContent = formatCountdown(left);
    if (left === 0) return true; // a deal ended: the caller redraws (price back to normal)
  }
  return false;
}
