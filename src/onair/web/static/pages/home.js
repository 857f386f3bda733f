// `/`: live and scheduled streams, dev sign-in, and "Go live" for sellers.

import { devSignIn, makeApi, readConfig, renderSession, Session, showError, signInFromApp } from "./common.js";

const config = readConfig();
const session = new Session();
const api = makeApi(session);
const $ = (id) => document.getElementById(id);

function streamItem(stream) {
  const li = document.createElement("li");
  li.dataset.streamId = stream.id;
  const badge = document.createElement("span");
  badge.className = `badge ${stream.status}`;
  badge.textContent = stream.status;
  const title = document.createElement("a");
  title.href = `/watch/${encodeURIComponent(stream.id)}`;
  title.textContent = stream.title;
  const viewers = document.createElement("span");
  viewers.className = "meta";
  viewers.textContent = `${stream.viewer_count ?? 0} watching`;
  li.append(badge, title, viewers);
  if (stream.seller_id === session.userId) {
    const studio = document.createElement("a");
    studio.href = `/studio/${encodeURIComponent(stream.id)}`;
    studio.textContent = "open studio";
    li.append(studio);
  }
  return li;
}

async function refresh() {
  try {
    const [live, paused, scheduled] = await Promise.all(
      ["live", "paused", "scheduled"].map((status) => api.listStreams({ status, limit: 50 })),
    );
    $("live-list").replaceChildren(...[...live.items, ...paused.items].map(streamItem));
    $("scheduled-list").replaceChildren(...scheduled.items.map(streamItem));
    showError($("home-error"), null);
  } catch (err) {
    showError($("home-error"), err);
  }
}

async function main() {
  await signInFromApp(session, config).catch((err) => showError($("home-error"), err));
  renderSession(session);
  $("sign-in").hidden = session.signedIn || !config.dev_auth;
  $("go-live").hidden = !session.signedIn || !["seller", "admin"].includes(session.role);
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target.elements;
    try {
      await devSignIn(api, session, form.user.value.trim(), form.role.value);
      location.reload();
    } catch (err) {
      showError($("home-error"), err);
    }
  });
  $("go-live-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const stream = await api.createStream(event.target.elements.title.value.trim());
      location.href = `/studio/${encodeURIComponent(stream.id)}`;
    } catch (err) {
      showError($("home-error"), err);
    }
  });
  refresh();
  setInterval(refresh, 10000);
}

main();
