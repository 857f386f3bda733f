// The studio's showcase controls: add products, pin/unpin, move up, sold out, flash deals,
// remove, and the pinned chat message. Every change goes over REST; its answer (the whole new
// showcase) is applied at once, and the "showcase" broadcast that follows is then a duplicate the
// reducer drops.

import { formatCountdown, dealRemainingMs, formatPrice, showcaseView } from "../client/showcase_state.js";
import { renderPinnedMessage } from "./showcase_panel.js";

/** Minor-unit digits of an ISO 4217 currency, as this browser knows them (2 when unknown). */
export function currencyDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** "12.99" / "12,99" / "13" → integer minor units (1299), or null when not a plain amount. */
export function toMinor(text, digits) {
  const match = /^\s*(\d{1,12})(?:[.,](\d+))?\s*$/.exec(String(text));
  if (!match || (match[2] ?? "").length > digits) return null;
  return Number(match[1]) * 10 ** digits + Number((match[2] ?? "").padEnd(digits, "0") || 0);
}

function button(text, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

export function mountStudioShowcase({ form, list, messageBox, api, streamId, sync, onError }) {
  const change = async (method, path, body) => {
    try {
      sync.snapshot(await api.changeShowcase(streamId, method, path, body));
      onError(null);
    } catch (err) {
      onError(err);
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    const currency = f.currency.value.trim().toUpperCase();
    const price = toMinor(f.price.value, currencyDigits(currency));
    if (price === null) return onError(`Price: write an amount such as 12.99 (${currency})`);
    const body = { title: f.title.value, price_minor: price, currency, product_url: f.product_url.value.trim() };
    if (f.image_url.value.trim()) body.image_url = f.image_url.value.trim();
    if (f.stock.value !== "") body.stock = Number(f.stock.value);
    await change("POST", "/products", body);
    form.reset();
    f.currency.value = currency;
  });

  const render = () => {
    const view = showcaseView(sync.state);
    renderPinnedMessage(messageBox, view.pinnedMessage);
    if (view.pinnedMessage && messageBox) messageBox.append(button("Unpin", () => change("DELETE", "/pinned-message"), "mod"));
    const now = Date.now();
    // a redraw (a pin or deal coming back over realtime) must not lose what the seller is typing
    const typed = new Map(); // "product id|input name" -> value
    for (const input of list.querySelectorAll("li[data-product-id] input")) {
      typed.set(`${input.closest("li").dataset.productId}|${input.name}`, input.value);
    }
    const focused = document.activeElement?.closest?.("li[data-product-id]") && list.contains(document.activeElement)
      ? `${document.activeElement.closest("li").dataset.productId}|${document.activeElement.name}` : null;
    list.replaceChildren(...view.products.map((p, index) => {
      const li = document.createElement("li");
      li.dataset.productId = p.id;
      const pinned = view.pinned?.id === p.id;
      li.classList.toggle("pinned", pinned);
      const label = document.createElement("span");
      label.className = "label";
      const exp = p.currency_exponent ?? 2;
      const deal = dealRemainingMs(sync.state, p, now);
      label.textContent = `${pinned ? "Pinned: " : ""}${p.title} · ${formatPrice(p.price_minor, p.currency, exp)}`
        + (deal > 0 ? ` · deal ${formatPrice(p.deal_price_minor, p.currency, exp)} (${formatCountdown(deal)})` : "")
        + (p.sold_out ? " · sold out" : "") + (Number.isInteger(p.stock) ? ` · stock ${p.stock}` : "");
      const id = encodeURIComponent(p.id);
      const controls = document.createElement("span");
      controls.className = "product-controls";
      controls.append(
        pinned ? button("Unpin", () => change("DELETE", "/pin")) : button("Pin", () => change("POST", `/products/${id}/pin`)),
        button("Up", () => change("POST", `/products/${id}/move`, { position: Math.max(0, index - 1) })),
        button(p.sold_out ? "Back in stock" : "Sold out", () => change("POST", `/products/${id}/sold-out`, { sold_out: !p.sold_out })),
      );
      const dealForm = document.createElement("form");
      dealForm.className = "deal-form";
      const dealPrice = Object.assign(document.createElement("input"), { name: "deal_price", placeholder: "Deal price", inputMode: "decimal", size: 7, required: true });
      const minutes = Object.assign(document.createElement("input"), { name: "minutes", type: "number", min: "1", max: "1440", value: "5", size: 4, required: true });
      dealPrice.setAttribute("aria-label", `Deal price for ${p.title}`);
      minutes.setAttribute("aria-label", "Deal minutes");
      const start = Object.assign(document.createElement("button"), { type: "submit", textContent: "Start deal" });
      dealForm.append(dealPrice, minutes, start);
      if (deal > 0) dealForm.append(button("End deal", () => change("DELETE", `/products/${id}/deal`)));
      dealForm.addEventListener("submit", (event) => {
        event.preventDefault();
        const minor = toMinor(dealPrice.value, exp);
        if (minor === null) return onError("Deal price: write an amount such as 9.99");
        change("POST", `/products/${id}/deal`, { deal_price_minor: minor, duration_seconds: Math.round(Number(minutes.value) * 60) });
      });
      controls.append(button("Remove", () => change("DELETE", `/products/${id}`), "danger"));
      for (const input of [dealPrice, minutes]) {
        const key = `${p.id}|${input.name}`;
        if (typed.has(key)) input.value = typed.get(key);
        if (key === focused) queueMicrotask(() => input.focus());
      }
      li.append(label, controls, dealForm);
      return li;
    }));
  };
  return { render, pinMessage: (message) => change("PUT", "/pinned-message", { message_id: message.id }) };
}
