// One realtime channel per stream (`stream:{id}`) carries everything a page needs: chat rows
// (postgres_changes on chat_messages), the stream's own row (stream_sessions), server broadcasts
// (stream_state, viewer_count, token_renew) and, in local media mode, WebRTC signalling.
// Listeners must be added before subscribe(), so pages build it in one place.

import { ChatLog } from "../client/chat_log.js";
import { ChatSync } from "../client/chat_sync.js";
import { Outbox } from "../client/outbox.js";
import { realTimers } from "../client/emitter.js";
import { streamFromEvent } from "./common.js";

export const SELLER_STATE_EVENT = "seller:state";

export function streamChannel({ socket, manager, api, config, session, streamId, onStream, onViewerCount, onTokenRenew,
  timers = realTimers, storage = globalThis.sessionStorage }) {
  const topic = (config.web?.stream_topic ?? "stream:{id}").replace("{id}", streamId);
  const channel = socket.channel(topic, { private: true, accessToken: session.token, presence: { key: session.userId ?? "" } });
  const log = new ChatLog();
  const sync = new ChatSync({
    api,
    streamId,
    log,
    timers,
    pollMs: config.web?.chat_poll_ms ?? 3000,
    verifyMs: config.web?.chat_verify_ms ?? 30000,
  });
  sync.bind(channel);
  const outbox = new Outbox({ api, streamId, timers, storage });
  outbox.on("delivered", (_entry, row) => {
    if (log.applyRows([row])) sync.resync();
  });
  channel.listen("postgres_changes", { event: "UPDATE", schema: "public", table: "stream_sessions", filter: `id=eq.${streamId}` }, (change) => {
    const stream = streamFromEvent(change.new);
    if (stream) onStream?.(stream);
  });
  channel.listen("broadcast", { event: "stream_state" }, (message) => {
    const stream = streamFromEvent(message.payload);
    if (stream) onStream?.(stream);
  });
  channel.listen("broadcast", { event: "viewer_count" }, (message) => {
    const n = message.payload?.viewer_count;
    if (Number.isInteger(n)) onViewerCount?.(n);
  });
  channel.listen("broadcast", { event: "token_renew" }, (message) => onTokenRenew?.(message.payload));
  // The studio announces its own transitions ("seller:state", an event only the seller and
  // co-hosts may send). It is only a hint: the page re-reads the stream from the server.
  const rereadStream = () => api.getStream(streamId).then((stream) => onStream?.(stream), () => {});
  channel.listen("broadcast", { event: SELLER_STATE_EVENT }, rereadStream);
  // Events missed while the channel was away (a rejoin) or while the server's live delivery was
  // interrupted (its "delivery" notice): re-read the stream; ChatSync resyncs chat on both.
  channel.on("state", (state, { joinCount } = {}) => {
    if (state === "joined" && joinCount > 1) rereadStream();
  });
  channel.on("delivery", ({ live }) => {
    if (live) rereadStream();
  });
  // The server closes the channel for good a moment after the stream ended (its final state and
  // last chat rows come first): catch up once, then stop polling; the page keeps what it shows.
  let finished = false;
  channel.on("finished", () => {
    finished = true;
    sync.resync().finally(() => sync.stop());
    api.getStream(streamId).then((stream) => onStream?.(stream), () => {});
  });
  manager.on("state", () => {
    if (!finished) sync.setRealtimeAvailable(manager.online);
  });
  manager.on("restored", () => outbox.flush());
  sync.setRealtimeAvailable(false); // until the first connect: poll
  sync.resync();
  return { channel, log, sync, outbox };
}
