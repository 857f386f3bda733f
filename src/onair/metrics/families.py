"""Every metric onair exports, in one place (own registry, so tests can build many apps).

Conventions (https://prometheus.io/docs/practices/naming/): base units (seconds, bytes),
``_total`` on counters, label values from small fixed sets (no user, stream or topic ids).
Everything counted per request, message or batch is a plain int (here, for HTTP, and in the
services) copied in at scrape time (``export.py``); nothing on a hot path calls into
prometheus-client. Gauges say how they combine over the
workers of ``onair serve --workers N`` (``multiprocess_mode``, see ``multiprocess.py``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from onair.domain import playback
from onair.tally import BATCH_SIZES, SECONDS, Tally

HTTP_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# Label values created up front, so every series exists (at 0) from the first scrape: rate()
# and alerts see a counter start instead of a series appearing out of nowhere.
JOIN_REFUSALS = ("invalid_token", "unauthorized", "too_many_channels", "too_many_connections",
                 "error", "other")
LIMITS = ("messages_per_second", "payload_bytes", "presence_bytes", "bytes_per_second",
          "channels_per_connection", "connections_per_ip", "connections_per_user", "filter_cost")
CHAT_OUTCOMES = ("created", "duplicate", "rate-limited", "slow-mode", "chat-muted",
                 "chat-banned", "stream-not-live", "stream-not-found", "client-msg-id-reused",
                 "chat-overloaded", "chat-timeout", "chat-unavailable")
TOKEN_ROLES = ("publisher", "subscriber", "rtm")
TOKEN_REFUSALS = ("rate-limited", "agora-not-configured", "stream-not-found", "stream-ended",
                  "not-a-publisher", "unauthorized")
DB_ERRORS = ("connection", "timeout", "integrity", "query", "other")
WRITERS = ("chat", "tokens")
READY_CHECKS = ("database", "broker")
STREAM_STATES = ("scheduled", "live", "paused", "ended")
CACHES = ("stream", "access")
CACHE_DROPS = ("local", "remote", "event", "link")


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        # -- HTTP (per request, in RequestContextMiddleware) --
        self.requests = Counter("onair_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "onair_http_request_duration_seconds", "HTTP request latency by route",
            ["method", "route"], registry=r,
            buckets=HTTP_SECONDS,
        )
        self.errors = Counter("onair_http_errors_total", "HTTP 5xx responses by route",
                              ["route"], registry=r)
        # -- service state, read from the database at scrape --
        self.streams = Gauge("onair_streams", "Streams by status", ["status"], registry=r,
                             multiprocess_mode="livemostrecent")
        self.viewers = Gauge("onair_active_viewers", "Viewers present in live or paused streams",
                             registry=r, multiprocess_mode="livemostrecent")
        self.ready = Gauge("onair_ready", "1 when the check of /readyz passes at scrape, else 0",
                           ["check"], registry=r, multiprocess_mode="livemostrecent")
        self.workers = Gauge("onair_workers", "Server processes answering (1 per worker)",
                             registry=r, multiprocess_mode="livesum")
        self.resident = Gauge("onair_process_resident_memory_bytes",
                              "Resident memory of the server processes", registry=r,
                              multiprocess_mode="livesum")
        # -- realtime hub --
        self.rt_connections = Gauge("onair_realtime_connections", "Open realtime sockets by "
                                    "serializer version", ["vsn"], registry=r,
                                    multiprocess_mode="livesum")
        self.rt_channels = Gauge("onair_realtime_channels", "Joined channels (memberships)",
                                 registry=r, multiprocess_mode="livesum")
        self.rt_topics = Gauge("onair_realtime_topics", "Topics with at least one local member",
                               registry=r, multiprocess_mode="livesum")
        self.rt_pending = Gauge("onair_realtime_pending_bytes", "Bytes queued for sockets that "
                                "are not keeping up", registry=r, multiprocess_mode="livesum")
        self.rt_backlogged = Gauge("onair_realtime_backlogged_connections", "Sockets whose "
                                   "writes are paused or queued", registry=r,
                                   multiprocess_mode="livesum")
        self.rt_joins = Counter("onair_realtime_joins_total", "Channel joins accepted", registry=r)
        self.rt_refused = Counter("onair_realtime_joins_refused_total", "Channel joins refused",
                                  ["reason"], registry=r)
        self.rt_published = Counter("onair_realtime_messages_total", "Messages published to "
                                    "local topics (each fans out to the topic's members)",
                                    registry=r)
        self.rt_deliveries = Counter("onair_realtime_deliveries_total", "Messages delivered to "
                                     "sockets", registry=r)
        self.rt_writes = Counter("onair_realtime_writes_total", "Socket writes (several "
                                 "deliveries share one when they coalesce)", registry=r)
        self.rt_slow = Counter("onair_realtime_slow_consumers_total", "Sockets cut off for "
                               "falling behind (pending bytes past their bound)", registry=r)
        self.rt_limits = Counter("onair_realtime_limit_hits_total", "Requests or connections a "
                                 "realtime limit refused", ["limit"], registry=r)
        self.rt_flush = Histogram("onair_realtime_flush_duration_seconds", "Duration of one "
                                  "fan-out flush (one per event-loop turn with messages)",
                                  registry=r, buckets=SECONDS)
        self.rt_lag = Histogram("onair_realtime_delivery_lag_seconds", "From a database "
                                "change's commit to its fan-out here (broker, queueing, reordering)",
                                registry=r, buckets=SECONDS)
        # -- reactions --
        self.reaction_taps = Counter("onair_reactions_taps_total", "Reaction taps by outcome: "
                                     "accepted, rate_limited (dropped silently), bad_kind, overflow",
                                     ["outcome"], registry=r)
        self.reaction_aggregates = Counter("onair_reactions_aggregates_total", "Reaction "
                                           "aggregates broadcast (one per stream and window)",
                                           registry=r)
        self.reaction_partials = Counter("onair_reactions_partials_received_total", "Other "
                                         "processes' partial reaction counts applied here",
                                         registry=r)
        # -- chat --
        self.chat_sends = Counter("onair_chat_sends_total", "Chat sends by outcome: created, "
                                  "duplicate (a retry) or the problem type it was refused with",
                                  ["outcome"], registry=r)
        self.chat_commit_failures = Counter("onair_chat_commit_failures_total", "Chat "
                                            "transactions that failed (their sends got 503)",
                                            registry=r)
        self.batch_size = Histogram("onair_group_commit_batch_size", "Requests per group commit "
                                    "transaction", ["writer"], registry=r, buckets=BATCH_SIZES)
        self.commit_seconds = Histogram("onair_group_commit_duration_seconds", "Duration of one "
                                        "group commit transaction", ["writer"], registry=r,
                                        buckets=SECONDS)
        self.queue_depth = Gauge("onair_group_commit_queue_depth", "Requests waiting for the "
                                 "next group commit", ["writer"], registry=r,
                                 multiprocess_mode="livesum")
        # -- Agora tokens --
        self.tokens_issued = Counter("onair_tokens_issued_total", "Agora tokens issued by role",
                                     ["role"], registry=r)
        self.tokens_refused = Counter("onair_tokens_refused_total", "Token requests refused, "
                                      "by problem type", ["reason"], registry=r)
        self.tokens_revoked = Counter("onair_tokens_revoked_total", "Agora tokens revoked",
                                      ["reason"], registry=r)
        # -- database --
        self.db_in_use = Gauge("onair_db_pool_in_use", "Database connections checked out",
                               ["pool"], registry=r, multiprocess_mode="livesum")
        self.db_capacity = Gauge("onair_db_pool_capacity", "Most connections a pool opens",
                                 ["pool"], registry=r, multiprocess_mode="livesum")
        self.db_errors = Counter("onair_db_errors_total", "Failed database transactions by kind",
                                 ["kind"], registry=r)
        # -- broker --
        self.broker_up = Gauge("onair_broker_up", "1 while the broker link is up, else 0",
                               registry=r, multiprocess_mode="livemin")
        self.broker_published = Counter("onair_broker_events_published_total", "Committed "
                                        "events handed to the broker", registry=r)
        self.broker_failures = Counter("onair_broker_publish_failures_total", "Publishes the "
                                       "broker refused: committed events, realtime relays",
                                       ["source"], registry=r)
        self.broker_link_failures = Counter("onair_broker_link_failures_total", "Broker links "
                                            "lost or connects that failed", registry=r)
        self.broker_reconnects = Counter("onair_broker_reconnects_total", "Broker links "
                                         "re-established after a loss", registry=r)
        self.reorder_held = Counter("onair_broker_chat_reorder_held_total", "Chat rows held "
                                    "back until an earlier seq from another process arrived",
                                    registry=r)
        self.reorder_gaps = Counter("onair_broker_chat_gaps_given_up_total", "Chat seq gaps "
                                    "given up after waiting (clients resync)", registry=r)
        # -- stream cache (services/stream_cache.py) --
        self.cache_lookups = Counter("onair_cache_lookups_total", "Stream cache lookups by "
                                     "cache (stream rows, access facts) and result",
                                     ["cache", "result"], registry=r)
        self.cache_invalidations = Counter("onair_cache_invalidations_total", "Stream cache "
                                           "drops by source: a change here, another process "
                                           "(onair:cache), a change event, a broker link loss",
                                           ["source"], registry=r)
        self.cache_entries = Gauge("onair_cache_entries", "Streams cached, by cache", ["cache"],
                                   registry=r, multiprocess_mode="livesum")
        # -- reaper --
        self.reaper_last = Gauge("onair_reaper_last_success_timestamp_seconds", "When the "
                                 "reaper last completed a pass (Unix time; 0: never here)",
                                 registry=r, multiprocess_mode="max")
        self.reaper_passes = Counter("onair_reaper_passes_total", "Reaper passes by outcome",
                                     ["outcome"], registry=r)
        self.reaper_actions = Counter("onair_reaper_actions_total", "What reaper passes did, "
                                      "by kind", ["kind"], registry=r)
        # -- playback, as the pages report it (POST /api/v1/telemetry; labels: fixed sets) --
        self.pb_reports = Counter("onair_playback_reports_total", "Telemetry batches by outcome "
                                  "(accepted, invalid, too_large, rate_limited, overloaded)",
                                  ["outcome"], registry=r)
        self.pb_sessions = Counter("onair_playback_sessions_total", "Players started (a page "
                                   "began showing a stream)", ["page"], registry=r)
        self.pb_first_frame = Histogram("onair_playback_time_to_first_frame_seconds", "From a "
                                        "player's start to its first decoded frame", ["page"],
                                        registry=r, buckets=playback.FIRST_FRAME_SECONDS)
        self.pb_problems = Counter("onair_playback_video_problems_total", "Black or frozen video "
                                   "seen in frames sampled from the player", ["page", "problem"],
                                   registry=r)
        self.pb_stalls = Histogram("onair_playback_stall_duration_seconds", "Playback stalls "
                                   "(video waiting for data) by duration", ["page"], registry=r,
                                   buckets=playback.STALL_SECONDS)
        self.pb_reconnects = Counter("onair_playback_reconnects_total", "Connections the pages "
                                     "re-established", ["page", "link"], registry=r)
        self.pb_failures = Counter("onair_playback_media_failures_total", "Media failures by "
                                   "reason", ["page", "reason"], registry=r)
        self.pb_layers = Counter("onair_playback_layer_choices_total", "Video quality layers the "
                                 "players chose", ["page", "layer"], registry=r)
        self.pb_rtt = Histogram("onair_playback_realtime_rtt_seconds", "Realtime heartbeat round "
                                "trips measured by the pages", ["page"], registry=r,
                                buckets=playback.RTT_SECONDS)
        self._initialize_labels()
        # Per request only plain counts (a dict increment, a bisect): prometheus-client's
        # inc()/observe() cost ~7 us per request here (~12 us on the multiprocess files);
        # export.py copies these at scrape time like every other plain counter.
        self.http_counts: dict[tuple[str, str, int], int] = {}
        self.http_latency: dict[tuple[str, str], Tally] = {}
        self.http_errors: dict[str, int] = {}
        self.exporter: Any = None  # export.Exporter, made at the first sync

    def _initialize_labels(self) -> None:
        for family, values in ((self.rt_refused, JOIN_REFUSALS), (self.rt_limits, LIMITS),
                               (self.chat_sends, CHAT_OUTCOMES), (self.tokens_issued, TOKEN_ROLES),
                               (self.tokens_refused, TOKEN_REFUSALS), (self.db_errors, DB_ERRORS),
                               (self.batch_size, WRITERS), (self.commit_seconds, WRITERS),
                               (self.queue_depth, WRITERS), (self.ready, READY_CHECKS),
                               (self.streams, STREAM_STATES),
                               (self.rt_connections, ("1.0.0", "2.0.0")),
                               (self.broker_failures, ("events", "relay", "cache")),
                               (self.cache_invalidations, CACHE_DROPS),
                               (self.cache_entries, CACHES),
                               (self.tokens_revoked, ("demoted", "stream_ended")),
                               (self.reaper_passes, ("done", "not_leader", "failed")),
                               (self.reaper_actions, ("paused", "ended", "viewers_left"))):
            for value in values:
                family.labels(value)
        for cache in CACHES:
            for result in ("hit", "miss"):
                self.cache_lookups.labels(cache, result)
        for value in playback.OUTCOMES:
            self.pb_reports.labels(value)
        for page in playback.PAGES:
            for family in (self.pb_sessions, self.pb_first_frame, self.pb_stalls, self.pb_rtt):
                family.labels(page)
            for labelled, kinds in ((self.pb_problems, playback.PROBLEMS),
                                    (self.pb_reconnects, playback.LINKS),
                                    (self.pb_failures, playback.FAILURES),
                                    (self.pb_layers, playback.LAYERS)):
                for kind in kinds:
                    labelled.labels(page, kind)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        counts = self.http_counts
        key = (method, route, status)
        counts[key] = counts.get(key, 0) + 1
        latency = self.http_latency.get((method, route))
        if latency is None:
            latency = self.http_latency[(method, route)] = Tally(HTTP_SECONDS)
        latency.observe(seconds)
        if status >= 500:
            self.http_errors[route] = self.http_errors.get(route, 0) + 1
