// What every page needs: its configuration, the signed-in session, the REST client, the realtime
// socket with its connection manager, and the connection badge / notice in the header.

import { Api } from "../client/api.js";
import { ConnectionManager } from "../client/connection_manager.js";
import { realTimers } from "../client/emitter.js";
import { RealtimeSocket } from "../client/realtime_socket.js";
import { RefreshTimer, jwtExpiry } from "../client/token_refresh.js";
import { initialToken, sessionFromJwt, userTokenSource } from "../client/user_token.js";

export function readConfig() {
  return JSON.parse(document.getElementById("onair-config").textContent);
}

const SESSION_KEY = "onair.session";

/** The signed-in user, kept in localStorage: {access_token, user_id, role}. */
export class Session {
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
    this.data = null;
    try {
      this.data = JSON.parse(storage.getItem(SESSION_KEY) ?? "null");
    } catch {
      this.data = null;
    }
    const exp = this.data ? jwtExpiry(this.data.access_token) : null;
    if (exp !== null && exp <= Date.now()) this.data = null;
  }

  get token() {
    return this.data?.access_token ?? null;
  }
  get userId() {
    return this.data?.user_id ?? null;
  }
  get role() {
    return this.data?.role ?? "anon";
  }
  get signedIn() {
    return Boolean(this.data);
  }

  save(data) {
    this.data = { access_token: data.access_token, user_id: data.user_id, role: data.role };
    this.storage.setItem(SESSION_KEY, JSON.stringify(this.data));
  }

  clear() {
    this.data = null;
    this.storage.removeItem(SESSION_KEY);
  }
}

export function makeApi(session) {
  return new Api({ baseUrl: "", getToken: () => session.token });
}

/** Sign in through the dev endpoint (only offered when the server has dev auth on). */
export async function devSignIn(api, session, user, role) {
  const data = await api.devSignIn(user, role);
  session.save(data);
  return data;
}

/** A page with no stored session takes the embedding app's (user_token.js), if it has one. */
export async function signInFromApp(session, config) {
  if (session.signedIn) return true;
  const token = await initialToken(globalThis);
  if (token) session.save(sessionFromJwt(token, config.web?.role_claim));
  return session.signedIn;
}

/** Pages that need a user (watching counts viewers): the embedding app's sign-in (user_token.js)
 * when it has one, else a guest buyer under dev auth. */
export async function ensureSignedIn(api, session, config) {
  if (await signInFromApp(session, config)) return true;
  if (!config.dev_auth) return false;
  const guest = `guest-${Math.random().toString(36).slice(2, 8)}`;
  await devSignIn(api, session, guest, "buyer");
  return true;
}

export function renderSession(session) {
  const el = document.getElementById("session");
  if (!el) return;
  el.replaceChildren();
  if (session.signedIn) {
    el.append(`${session.userId} (${session.role}) `);
    const out = document.createElement("button");
    out.type = "button";
    out.textContent = "Sign out";
    out.addEventListener("click", () => {
      session.clear();
      location.href = "/";
    });
    el.append(out);
  } else {
    el.textContent = "not signed in";
  }
}

/** "Connection lost. Reconnecting… Next try in 12 s.": the notice with its live countdown. */
export function noticeText(notice, nowMs) {
  if (!notice) return "";
  const seconds = Number.isFinite(notice.retryAt) ? Math.max(0, Math.ceil((notice.retryAt - nowMs) / 1000)) : null;
  return seconds === null ? notice.message : `${notice.message} Next try in ${seconds} s.`;
}

/** The realtime socket + connection manager, with the header badge and the retry notice wired;
 *  a REST call that cannot reach the server (`api`) makes the manager check the link at once. */
export function connectRealtime(config, session, api = null, { noticeSuffix = "" } = {}) {
  const realtimeUrl = new URL(config.realtime_url ?? "/realtime/v1", location.href).toString();
  const socket = new RealtimeSocket({ url: realtimeUrl, apikey: config.anon_key, vsn: "2.0.0", timers: realTimers });
  const manager = new ConnectionManager({ socket, timers: realTimers, policy: config.web?.reconnect ?? {}, env: globalThis });
  const badge = document.getElementById("conn");
  const notice = document.getElementById("notice");
  const noticeLine = document.getElementById("notice-text");
  manager.on("state", (state) => {
    if (badge) {
      badge.dataset.conn = state;
      badge.textContent = state;
    }
  });
  let countdown = null;
  manager.on("notice", (n) => {
    if (!notice) return;
    notice.hidden = !n;
    notice.dataset.reason = n?.reason ?? "";
    clearInterval(countdown);
    if (!n) return;
    const render = () => (noticeLine.textContent = `${noticeText(n, Date.now())}${noticeSuffix}`);
    render();
    countdown = setInterval(render, 1000);
  });
  if (api) api.onNetworkError = () => manager.suspect();
  document.getElementById("notice-retry")?.addEventListener("click", () => manager.retry());
  // The user's JWT expires: get a new one before it does (user_token.js says from where) and
  // hand it to every channel (spec §7.2 access_token). With no source, say so when it expires.
  const exp = jwtExpiry(session.token ?? "");
  if (exp !== null) {
    const source = userTokenSource({
      host: globalThis,
      devAuth: config.dev_auth,
      devSignIn: async () => (await devSignIn(makeApi(session), session, session.userId, session.role)).access_token,
    });
    const timer = new RefreshTimer({
      name: "jwt",
      timers: realTimers,
      marginMs: 60_000,
      refresh: async () => {
        if (!source) throw new Error("nothing can refresh this sign-in");
        session.save(sessionFromJwt(await source.get(), config.web?.role_claim));
        for (const channel of socket.channels.values()) channel.setAccessToken(session.token);
        document.documentElement.dataset.tokenSource = source.name; // for the e2e test
        return { expiresAt: jwtExpiry(session.token) };
      },
      onExpired: () => {
        if (!notice) return;
        notice.hidden = false;
        notice.dataset.reason = "signed-out";
        noticeLine.textContent = "Your sign-in has expired: sign in again to keep chatting.";
      },
    });
    timer.schedule({ expiresAt: exp });
  }
  return { socket, manager };
}

/** Keep calling `beat` every `intervalMs` (host or viewer heartbeats for the reaper and counts). */
export function every(intervalMs, beat) {
  let stopped = false;
  const loop = async () => {
    if (stopped) return;
    try {
      await beat();
    } catch {
      // a missed beat is retried on the next tick; the reaper tolerates a few
    }
    if (!stopped) setTimeout(loop, intervalMs);
  };
  loop();
  return () => {
    stopped = true;
  };
}

export function showError(el, err) {
  if (!el) return;
  el.hidden = !err;
  el.textContent = err ? String(err.message ?? err) : "";
}

/** The stream carried by a realtime message: a stream_state broadcast or a stream_sessions row. */
export function streamFromEvent(payload) {
  if (!payload || typeof payload !== "object") return null;
  const stream = payload.stream ?? payload.record ?? payload.new ?? payload;
  return stream && typeof stream.status === "string" ? stream : null;
}
