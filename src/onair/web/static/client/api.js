// REST client for onair's `/api/v1` (issues 2–4). `fetch` is injected so tests run under node.
// Every failure becomes an ApiError carrying the problem+json `type`, the HTTP status and
// whether retrying the same request can help (network errors, 408, 429, 5xx).

/** A gateway error that onair did not write (every onair error is problem+json): behind a reverse
 * proxy, a 502/503/504 of the proxy's own means onair itself could not be reached. */
function fromAProxy(response) {
  if (![502, 503, 504].includes(response.status)) return false;
  return !String(response.headers?.get?.("Content-Type") ?? "").includes("application/problem+json");
}

export class ApiError extends Error {
  constructor(status, problem = {}, retryAfterMs = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status; // 0 = no response (network)
    this.type = problem.type ?? (status === 0 ? "network" : "http");
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
  }

  get retryable() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export class Api {
  constructor({ baseUrl = "", fetch = globalThis.fetch.bind(globalThis), getToken = () => null } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.fetch = fetch;
    this.getToken = getToken;
    // told when the server could not be reached (the page checks its realtime link at once)
    this.onNetworkError = () => {};
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = await this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      this.onNetworkError(err);
      throw new ApiError(0, { title: "network error", detail: String(err?.message ?? err) });
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { detail: text };
      }
    }
    if (!response.ok) {
      if (fromAProxy(response)) this.onNetworkError(new Error(`HTTP ${response.status} from a proxy`));
      const retryAfter = Number(response.headers?.get?.("Retry-After"));
      throw new ApiError(response.status, data ?? {}, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : null);
    }
    return data;
  }

  // --- auth and configuration ---
  devSignIn(user, role) {
    return this.request("POST", "/api/v1/auth/dev-sign-in", { user, role });
  }

  // --- streams (issue 2) ---
  listStreams(params = {}) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null));
    return this.request("GET", `/api/v1/streams${query.size ? `?${query}` : ""}`);
  }
  createStream(title) {
    return this.request("POST", "/api/v1/streams", { title });
  }
  getStream(id) {
    return this.request("GET", `/api/v1/streams/${encodeURIComponent(id)}`);
  }
  transition(id, action, body) {
    return this.request("POST", `/api/v1/streams/${encodeURIComponent(id)}/${action}`, body);
  }
  joinAsViewer(id) {
    return this.request("POST", `/api/v1/streams/${encodeURIComponent(id)}/viewers`, {});
  }
  leaveAsViewer(id) {
    return this.request("DELETE", `/api/v1/streams/${encodeURIComponent(id)}/viewers/me`);
  }
  heartbeat(id) {
    return this.request("POST", `/api/v1/streams/${encodeURIComponent(id)}/heartbeat`, {});
  }

  // --- chat (issue 4) ---
  sendChat(id, { body, client_msg_id, client_sent_at }) {
    return this.request("POST", `/api/v1/streams/${encodeURIComponent(id)}/chat`, { body, client_msg_id, client_sent_at });
  }
  /** One history page: {before_seq} pages backwards (newest first), {after_seq} forwards. */
  async chatPage(id, { limit, before_seq, after_seq } = {}) {
    const query = new URLSearchParams();
    if (limit !== undefined) query.set("limit", String(limit));
    if (before_seq !== undefined) query.set("before_seq", String(before_seq));
    if (after_seq !== undefined) query.set("after_seq", String(after_seq));
    const data = await this.request("GET", `/api/v1/streams/${encodeURIComponent(id)}/chat?${query}`);
    return normalizePage(data);
  }
  /** Mute (with duration_seconds) or ban a user from the stream's chat. */
  sanction(id, { user_id, kind, duration_seconds, reason }) {
    return this.request("POST", `/api/v1/streams/${encodeURIComponent(id)}/chat/sanctions`, { user_id, kind, duration_seconds, reason });
  }
  listCohosts(id) {
    return this.request("GET", `/api/v1/streams/${encodeURIComponent(id)}/cohosts`);
  }
  removeCohost(id, userId) {
    return this.request("DELETE", `/api/v1/streams/${encodeURIComponent(id)}/cohosts/${encodeURIComponent(userId)}`);
  }
  inviteCohost(id, userId) {
    return this.request("POST", `/api/v1/streams/${encodeURIComponent(id)}/cohosts`, { user_id: userId });
  }
  deleteChat(id, messageId) {
    return this.request("DELETE", `/api/v1/streams/${encodeURIComponent(id)}/chat/${encodeURIComponent(messageId)}`);
  }

  // --- showcase and pinned message (issue 14) ---
  getShowcase(id) {
    return this.request("GET", `/api/v1/streams/${encodeURIComponent(id)}/showcase`);
  }
  /** A showcase change: `path` below /showcase, e.g. "/products" or `/products/${pid}/pin`. */
  changeShowcase(id, method, path, body) {
    return this.request(method, `/api/v1/streams/${encodeURIComponent(id)}/showcase${path}`, body);
  }

  // --- Agora tokens (issue 3) ---
  /** role "subscriber" asks for a viewer token even when entitled to publish; omitted = by role. */
  rtcToken(id, role) {
    return this.request("POST", `/api/v1/streams/${encodeURIComponent(id)}/rtc-token`, role ? { role } : {});
  }
  refreshRtcToken(id, role) {
    return this.request("POST", `/api/v1/streams/${encodeURIComponent(id)}/rtc-token/refresh`, role ? { role } : {});
  }
}

/** A history page as {items, nextCursor}, whatever the list key is called. */
export function normalizePage(data) {
  const items = Array.isArray(data) ? data : (data?.items ?? data?.messages ?? data?.data ?? []);
  return { items, nextCursor: data?.next_cursor ?? null };
}
