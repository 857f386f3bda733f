// The reaction buttons of the watch page and the reaction display of both pages (issue 14).
// Floating emoji rise over `layer` (the player); with prefers-reduced-motion nothing moves: the
// counts on the buttons change instead. No inline handlers or styles (CSP: script-src 'self').

import { AGGREGATE_EVENT, EMOJI, KINDS, ReactionTally, TAP_EVENT } from "../client/reactions.js";

const MAX_FLOATING = 40; // a storm animates a sample, the counts carry the rest
const PER_KIND_PER_AGGREGATE = 6;

export function reactionsPanel({ root, layer, channel, api = null, streamId = null, buttons = true, rpm = null,
  timers = globalThis }) {
  const tally = new ReactionTally();
  const reduced = globalThis.matchMedia?.("(prefers-reduced-motion: reduce)");
  const badges = new Map();
  root.classList.add("reactions");
  root.dataset.total = "0";
  if (buttons) {
    for (const kind of KINDS) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "reaction";
      button.dataset.kind = kind;
      button.setAttribute("aria-label", `React: ${kind}`);
      const icon = document.createElement("span");
      icon.textContent = EMOJI[kind];
      icon.setAttribute("aria-hidden", "true");
      const badge = document.createElement("span");
      badge.className = "reaction-count";
      badge.textContent = "0";
      badges.set(kind, badge);
      button.append(icon, badge);
      button.addEventListener("click", () => tap(kind));
      root.append(button);
    }
  }

  function float(kind) {
    if (!layer || reduced?.matches || layer.querySelectorAll(".reaction-float").length >= MAX_FLOATING) return;
    const el = document.createElement("span");
    el.className = "reaction-float";
    el.textContent = EMOJI[kind];
    el.setAttribute("aria-hidden", "true");
    el.style.setProperty("--x", `${10 + Math.random() * 80}%`);
    el.addEventListener("animationend", () => el.remove());
    timers.setTimeout(() => el.remove(), 4000); // in case no animation runs at all
    layer.append(el);
  }

  function tap(kind) {
    if (!tally.tapped(kind)) return;
    float(kind); // at once: the aggregate carrying this tap is not shown again
    if (channel.state === "joined") channel.send(TAP_EVENT, { kind }).catch(() => {});
    else if (api && streamId) api.request("POST", `/api/v1/streams/${encodeURIComponent(streamId)}/reactions`, { kind }).catch(() => {});
  }

  channel.listen("broadcast", { event: AGGREGATE_EVENT }, (message) => {
    const others = tally.received(message.payload?.counts);
    for (const [kind, n] of Object.entries(others)) {
      for (let i = 0; i < Math.min(n, PER_KIND_PER_AGGREGATE); i++) timers.setTimeout(() => float(kind), i * 40);
    }
    for (const [kind, badge] of badges) badge.textContent = String(tally.totals[kind]);
    root.dataset.total = String(tally.total);
    if (rpm) rpm.textContent = String(tally.perMinute());
  });
  if (rpm) timers.setInterval(() => (rpm.textContent = String(tally.perMinute())), 1000);
  return { tally, tap };
}
