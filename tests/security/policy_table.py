"""The authorization policy of onair as data: who may do what, in which stream state (issue 10).

One table, read by ``test_authz_matrix.py``, which checks every row against the real app (REST
over ASGI, realtime over a real WebSocket) on SQLite and PostgreSQL. Where the rules come from:

* REST: the README's REST table ("Who" column) and the services that enforce it
  (``services/streams.py``, ``services/chat.py``, ``services/tokens.py``, ``domain/streams.py``,
  ``domain/chat.py``, ``api/*``).
* Realtime: the docstring of ``realtime/policies.py`` and issue 10 (reserved events under any
  casing, stale authorization on open sockets, leaks through change events).

Where today's code disagrees with issue 10, the row follows the issue and names the finding in
``FINDINGS`` below; while it is listed in ``EXPECTED_FAILURES`` (the one list of known gaps) the
test of that finding's rows is marked ``xfail(strict=True)``, so once the branch fixing it is
merged the test XPASSes and fails until the finding is deleted from ``EXPECTED_FAILURES``. A
row that fails without an open finding is a wrong row or a new bug.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# --- who and when -----------------------------------------------------------------------------

ANON = "anon"
BUYER = "buyer"
MUTED = "muted_buyer"
BANNED = "banned_buyer"
COHOST = "cohost"
DEMOTED = "demoted_cohost"
SELLER = "seller"  # the seller of the stream under test
OTHER_SELLER = "other_seller"
MODERATOR = "moderator"
ADMIN = "admin"
SERVICE = "service"  # the service key (role service_role)

ROLES = (ANON, BUYER, MUTED, BANNED, COHOST, DEMOTED, SELLER, OTHER_SELLER, MODERATOR, ADMIN,
         SERVICE)
# The app role each one's token carries (None: the anon key / no token; "service": service key).
TOKEN_ROLE = {ANON: None, BUYER: "buyer", MUTED: "buyer", BANNED: "buyer", COHOST: "buyer",
              DEMOTED: "buyer", SELLER: "seller", OTHER_SELLER: "seller",
              MODERATOR: "moderator", ADMIN: "admin", SERVICE: "service"}

SCHEDULED, LIVE, PAUSED, ENDED = "scheduled", "live", "paused", "ended"
STATES = (SCHEDULED, LIVE, PAUSED, ENDED)

SIGNED_IN = frozenset(ROLES) - {ANON}
STAFF = frozenset({MODERATOR, ADMIN, SERVICE})  # domain/identity.py STAFF
# domain/streams.py may_control: "the seller, moderator, admin" (README), service is staff too.
CONTROLLERS = STAFF | {SELLER}
# domain/chat.py is_moderator: the stream's seller and staff moderate its chat.
CHAT_MODERATORS = STAFF | {SELLER}
HOSTS = frozenset({SELLER, COHOST})  # publish video; send seller:* / webrtc:* events
SANCTIONED = frozenset({MUTED, BANNED})
# services/streams.py create: sellers, admins and the service role create streams.
CREATORS = frozenset({SELLER, OTHER_SELLER, ADMIN, SERVICE})
# services/showcase.py: the seller, its co-hosts and staff change the showcase (issue 14).
SHOWCASE_EDITORS = STAFF | {SELLER, COHOST}
CHAT_OPEN = frozenset({LIVE, PAUSED})  # services/chat.py CHATTABLE
HAS_MESSAGES = frozenset({LIVE, PAUSED, ENDED})  # the scenario sends messages while live

# --- known gaps (issue 10 findings other branches fix) ----------------------------------------

FINDINGS: dict[str, str] = {
    "f2-casing": "issue 10 finding 2: reserved broadcast events forged by changing letter case; "
                 "fixed on branch sec/events",
    "f2-staff": "issue 10 finding 2 (server-only events): moderators and admins could send "
                "stream_state/viewer_count/token_renew ('staff may do everything'); fixed on "
                "branch sec/events",
    "f5-stale": "issue 10 finding 5: authorization goes stale on open sockets (demote/invite); "
                "fixed on branch sec/authz",
    "f5-mute-end": "issue 10 finding 5: mutes and the stream's end must take effect on sockets "
                   "(a muted user broadcasts and tracks nothing, an ended stream takes no client "
                   "writes); fixed on branch sec/authz",
    "f6-leaks": "issue 10 finding 6: leaks through change events (stream_cohosts rows, "
                "deleted/pre-edit bodies, who was sanctioned); fixed on branch sec/authz",
    "f7-edit": "issue 10 finding 7: sanctioned users can still edit their messages; "
               "fixed on branch sec/authz",
}


# The findings whose fix is not merged yet: their rows run as xfail(strict=True). When a branch
# is merged, delete its findings here; their rows then join the plain test and must pass.
EXPECTED_FAILURES: frozenset[str] = frozenset({
})


@dataclass(frozen=True)
class Expect:
    """One expected outcome: an HTTP status (``OK`` = any 2xx) or a realtime outcome string."""

    outcome: int | str
    finding: str | None = None  # a key of FINDINGS when today's code disagrees

    def __post_init__(self) -> None:
        assert self.finding is None or self.finding in FINDINGS, self.finding

    @property
    def open_finding(self) -> str | None:
        """The finding this row waits for, or None once its fix is merged."""
        return self.finding if self.finding in EXPECTED_FAILURES else None


OK = "2xx"
Rule = Callable[[str, str], Expect]


def E(outcome: int | str, finding: str | None = None) -> Expect:
    return Expect(outcome, finding)


# --- REST ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestCase:
    """One request shape of one route. ``path`` uses the route's template; the harness fills
    ``{stream_id}`` (the stream in the state under test), ``{message_id}`` (``target``: the
    caller's own message or another user's), ``{user_id}`` (``user``: whose co-host seat or
    sanction the request names) and the realtime broadcast's ``{topic}``/``{event}``."""

    method: str
    path: str
    rule: Rule
    body: Any = None
    variant: str = ""
    target: str = ""  # "own" | "other" message for the chat message routes
    user: str = ""  # "cohost" | "sanction_target" for {user_id}
    resets: bool = False  # a 2xx changes the scenario: rebuild the stream before the next case
    per_state: bool = True  # False: the route does not depend on the stream (run once)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}" + (f" [{self.variant}]" if self.variant else "")


def everyone(status: int | str = OK) -> Rule:
    return lambda role, state: E(status)


def signed_in(rule: Rule) -> Rule:
    """Anonymous callers get 401 (api/deps.py require_user) before anything else is looked at."""
    return lambda role, state: E(401) if role == ANON else rule(role, state)


ALLOWED = everyone()


def only(roles: frozenset[str], then: Rule = ALLOWED, others: int = 403) -> Rule:
    return signed_in(lambda role, state: then(role, state) if role in roles else E(others))


def transition(allowed_from: frozenset[str]) -> Rule:
    """README: the seller, moderator, admin; others 403; an illegal move is 409."""
    return only(CONTROLLERS, lambda role, state: E(OK if state in allowed_from else 409))


def not_ended(role: str, state: str) -> Expect:
    return E(409 if state == ENDED else OK)


def chat_send(role: str, state: str) -> Expect:
    # services/chat.py _decide: closed chat (409) is decided before sanctions (403)
    if state not in CHAT_OPEN:
        return E(409)
    return E(403 if role in SANCTIONED else OK)


def own_message_edit(role: str, state: str) -> Expect:
    if state not in HAS_MESSAGES:
        return E(404)
    if role in SANCTIONED:  # issue 10 §7: a ban or mute stops edits too
        return E(403, "f7-edit")
    return E(OK)


def message_exists(then: Rule) -> Rule:
    return lambda role, state: E(404) if state not in HAS_MESSAGES else then(role, state)


def heartbeat(role: str, state: str) -> Expect:
    # services/streams.py heartbeat: the seller's keeps the stream alive (even ended: a no-op);
    # anyone else is a viewer, and an ended stream takes no viewers.
    if role == SELLER:
        return E(OK)
    return not_ended(role, state)


def publisher_token(role: str, state: str) -> Expect:
    # services/tokens.py: ended → 409 for everyone first; only the seller and co-hosts publish
    # (staff are not entitled to publish: domain/token_policy.py entitled_role)
    if state == ENDED:
        return E(409)
    return E(OK if role in HOSTS else 403)


STREAM = "/api/v1/streams/{stream_id}"
SHOWCASE_PRODUCT = STREAM + "/showcase/products/{product_id}"


def missing_message(role: str, state: str) -> Expect:
    return E(409 if state == ENDED else 404)


REST_CASES: tuple[RestCase, ...] = (
    # dev sign-in is off in the matrix (as it must be on any public deployment): 404 for all
    RestCase("POST", "/api/v1/auth/dev-sign-in", everyone(404),
             {"user": "mallory", "role": "admin"}, per_state=False),
    RestCase("GET", "/api/v1/auth/me", everyone(), per_state=False),
    RestCase("GET", "/api/v1/config", everyone(), per_state=False),
    # playback telemetry: anyone (pagehide beacons carry no token); only counters change
    RestCase("POST", "/api/v1/telemetry", everyone(),
             {"page": "watch", "events": [{"kind": "start"}]}, per_state=False),
    RestCase("POST", "/api/v1/streams", only(CREATORS), {"title": "matrix"}, per_state=False),
    RestCase("GET", "/api/v1/streams", everyone(), per_state=False),
    RestCase("GET", STREAM, everyone()),
    RestCase("POST", STREAM + "/start", transition(frozenset({SCHEDULED})), resets=True),
    RestCase("POST", STREAM + "/pause", transition(frozenset({LIVE})), resets=True),
    RestCase("POST", STREAM + "/resume", transition(frozenset({PAUSED})), resets=True),
    RestCase("POST", STREAM + "/end", transition(frozenset({SCHEDULED, LIVE, PAUSED})),
             {"reason": "matrix"}, resets=True),
    RestCase("POST", STREAM + "/viewers", signed_in(not_ended)),
    RestCase("DELETE", STREAM + "/viewers/me", signed_in(everyone())),
    RestCase("POST", STREAM + "/heartbeat", signed_in(heartbeat)),
    RestCase("POST", STREAM + "/rtc-token", signed_in(not_ended)),
    RestCase("POST", STREAM + "/rtc-token", signed_in(publisher_token), {"role": "publisher"},
             variant="publisher"),
    RestCase("POST", STREAM + "/rtc-token/refresh", signed_in(not_ended)),
    RestCase("POST", STREAM + "/rtm-token", signed_in(not_ended)),
    RestCase("GET", STREAM + "/cohosts", signed_in(everyone())),
    RestCase("POST", STREAM + "/cohosts", only(CONTROLLERS, not_ended),
             {"user_id": "matrix-invitee"}),
    # services/tokens.py demote: the seller or staff demote anyone; a co-host may step down
    RestCase("DELETE", STREAM + "/cohosts/{user_id}", only(CONTROLLERS | {COHOST}),
             user="cohost", resets=True),
    # services/tokens.py verify: "for edge services (service key) and staff"
    RestCase("POST", "/api/v1/tokens/verify", only(STAFF), {"token": "not-a-token"},
             per_state=False),
    RestCase("POST", STREAM + "/chat", signed_in(chat_send)),
    RestCase("GET", STREAM + "/chat", everyone()),
    RestCase("GET", STREAM + "/chat/{message_id}", message_exists(everyone()), target="own",
             variant="own"),
    RestCase("GET", STREAM + "/chat/{message_id}", message_exists(everyone()), target="other",
             variant="other"),
    RestCase("PATCH", STREAM + "/chat/{message_id}", signed_in(own_message_edit),
             {"body": "edited by the matrix"}, target="own", variant="own"),
    # domain/chat.py edit_refusal: only the sender edits, not even the seller or staff
    RestCase("PATCH", STREAM + "/chat/{message_id}", signed_in(message_exists(everyone(403))),
             {"body": "not yours"}, target="other", variant="other"),
    # domain/chat.py delete_refusal: a sender takes back their own (sanctioned or not) …
    RestCase("DELETE", STREAM + "/chat/{message_id}", signed_in(message_exists(everyone())),
             target="own", variant="own"),
    # … and the seller and staff delete anyone's
    RestCase("DELETE", STREAM + "/chat/{message_id}", signed_in(message_exists(
        lambda role, state: E(OK if role in CHAT_MODERATORS else 403))),
        target="other", variant="other"),
    RestCase("GET", STREAM + "/chat/sanctions", only(CHAT_MODERATORS)),
    RestCase("POST", STREAM + "/chat/sanctions", only(CHAT_MODERATORS),
             {"user_id": "matrix-victim", "kind": "mute", "duration_seconds": 60}),
    RestCase("DELETE", STREAM + "/chat/sanctions/{user_id}", only(CHAT_MODERATORS),
             user="sanction_target"),
    RestCase("GET", STREAM + "/chat/settings", everyone()),
    RestCase("PUT", STREAM + "/chat/settings", only(CHAT_MODERATORS), {"slow_mode_seconds": 0}),
    # services/showcase.py (issue 14): anyone reads; editors change it, but not an ended stream
    RestCase("GET", STREAM + "/showcase", everyone()),
    # api/reactions.py (issue 14): signed-in viewers who may write the stream's channel react
    RestCase("POST", STREAM + "/reactions", signed_in(
        lambda role, state: E(409) if state == ENDED else E(403) if role in (MUTED, BANNED) else E(OK)),
        body={"kind": "heart"}),
    RestCase("POST", STREAM + "/showcase/products", only(SHOWCASE_EDITORS, not_ended),
             {"title": "Matrix mug", "price_minor": 500, "currency": "EUR",
              "product_url": "https://shop.example/mug"}),
    # nothing is pinned and no deal runs in the scenario: editors get 409 (nothing-pinned,
    # no-deal or stream-ended); these rows come before the ones that pin or start a deal
    RestCase("DELETE", STREAM + "/showcase/pin", only(SHOWCASE_EDITORS, everyone(409))),
    RestCase("DELETE", STREAM + "/showcase/pinned-message", only(SHOWCASE_EDITORS, everyone(409))),
    RestCase("DELETE", SHOWCASE_PRODUCT + "/deal", only(SHOWCASE_EDITORS, everyone(409))),
    RestCase("PATCH", SHOWCASE_PRODUCT, only(SHOWCASE_EDITORS, not_ended), {"stock": 5}),
    RestCase("POST", SHOWCASE_PRODUCT + "/pin", only(SHOWCASE_EDITORS, not_ended)),
    RestCase("POST", SHOWCASE_PRODUCT + "/move", only(SHOWCASE_EDITORS, not_ended), {"position": 0}),
    RestCase("POST", SHOWCASE_PRODUCT + "/sold-out", only(SHOWCASE_EDITORS, not_ended),
             {"sold_out": True}),
    RestCase("POST", SHOWCASE_PRODUCT + "/deal", only(SHOWCASE_EDITORS, not_ended),
             {"deal_price_minor": 100, "duration_seconds": 60}),
    # the message does not exist: 404 for editors (409 once the stream ended)
    RestCase("PUT", STREAM + "/showcase/pinned-message", only(SHOWCASE_EDITORS, missing_message),
             {"message_id": "0190a000-0000-7000-8000-000000000000"}),
    RestCase("DELETE", SHOWCASE_PRODUCT, only(SHOWCASE_EDITORS, not_ended), resets=True),
    # server-side broadcast: any valid token may post (202); what is delivered is the realtime
    # policy's call (checked by the realtime matrix). No token at all → 401 (realtime/rest.py).
    RestCase("POST", "/realtime/v1/api/broadcast", signed_in(everyone(202)),
             {"messages": [{"topic": "matrix", "event": "ping", "payload": {}}]},
             per_state=False),
    RestCase("POST", "/realtime/v1/api/broadcast/{topic}/events/{event}",
             signed_in(everyone(202)), {}, per_state=False),
    RestCase("GET", "/healthz", everyone(), per_state=False),
    RestCase("GET", "/readyz", everyone(), per_state=False),
    # public by default (issue 10 §11 asks for an *optional* bearer token or a separate bind)
    RestCase("GET", "/metrics", everyone(), per_state=False),
    RestCase("GET", "/", everyone(), per_state=False),
    RestCase("GET", "/studio/{stream_id}", everyone()),
    RestCase("GET", "/watch/{stream_id}", everyone()),
    RestCase("GET", "/docs", everyone(), per_state=False),
    RestCase("GET", "/docs/oauth2-redirect", everyone(), per_state=False),
    RestCase("GET", "/redoc", everyone(), per_state=False),
    RestCase("GET", "/openapi.json", everyone(), per_state=False),
)

# The REST broadcast with no token at all (the anon row above uses no token too): realtime/rest.py
# answers 401 {"message": "Unauthorized"} for it; with the anon key it is 202 and dropped.

# --- realtime -----------------------------------------------------------------------------------

JOINED, REFUSED = "joined", "refused"
DELIVERED = "acked+delivered"  # the sender got ok, another member received it
NOT_DELIVERED = "refused"  # an error reply (or no membership at all), nobody received it
ROWS, NO_ROWS = "rows received", "no rows"
TRACKED = "tracked"

SERVER_EVENTS = ("stream_state", "viewer_count", "token_renew", "showcase")
HOST_EVENTS = ("seller:state", "webrtc:signal")
ORDINARY_EVENT = "reaction"

# postgres_changes tables and the column naming their stream (realtime/routing.py STREAM_COLUMN,
# plus stream_cohosts, which services/tokens.py publishes too)
CHANGE_TABLES = {"chat_messages": "stream_id", "stream_sessions": "id",
                 "stream_viewers": "stream_id", "stream_cohosts": "stream_id"}
# which tables get a row in the scenario's trigger sequence, per stream state
TRIGGERED = {
    SCHEDULED: {"stream_sessions", "stream_viewers", "stream_cohosts"},
    LIVE: {"chat_messages", "stream_sessions", "stream_viewers", "stream_cohosts"},
    PAUSED: {"chat_messages", "stream_sessions", "stream_viewers", "stream_cohosts"},
    ENDED: set(),
}


def join_public(role: str, state: str) -> Expect:
    # policies.py: a user banned from the stream gets nothing; everyone else reads public channels
    return E(REFUSED if role == BANNED else JOINED)


def join_private(role: str, state: str) -> Expect:
    return E(REFUSED if role in (BANNED, ANON) else JOINED)


def quieted(role: str, state: str) -> bool:
    """Muted users write nothing on the stream channel (a broadcast or a presence meta would
    carry what the mute keeps out of chat) and an ended stream takes no client writes; staff
    are exempt (issue 10 §5: "mutes and stream end must take effect on open sockets")."""
    return role not in STAFF and (role == MUTED or state == ENDED)


def ordinary_broadcast(role: str, state: str) -> Expect:
    # signed-in users send ordinary broadcasts; the anon key only reads
    if role in (ANON, BANNED):
        return E(NOT_DELIVERED)
    return E(NOT_DELIVERED, "f5-mute-end") if quieted(role, state) else E(DELIVERED)


def server_event(canonical: bool) -> Rule:
    """``stream_state``, ``viewer_count``, ``token_renew`` come only from the service role
    (policies.py docstring; issue 10 §2: under any casing)."""
    def rule(role: str, state: str) -> Expect:
        if role == SERVICE:
            return E(DELIVERED)
        if role in (ANON, BANNED):
            return E(NOT_DELIVERED)  # anon may not write at all, banned never joined
        if not canonical:
            return E(NOT_DELIVERED, "f2-casing")
        return E(NOT_DELIVERED, "f2-staff" if role in STAFF else None)
    return rule


def host_event(canonical: bool) -> Rule:
    """``seller:*``/``webrtc:*`` only from the stream's seller and co-hosts — and staff, who
    "may do everything" (policies.py) — under any casing (issue 10 §2)."""
    def rule(role: str, state: str) -> Expect:
        if role in STAFF:
            return E(DELIVERED)
        if role in HOSTS:
            return E(NOT_DELIVERED, "f5-mute-end") if quieted(role, state) else E(DELIVERED)
        if role in (ANON, BANNED):
            return E(NOT_DELIVERED)
        if not canonical:
            return E(NOT_DELIVERED, "f2-casing")
        return E(NOT_DELIVERED)
    return rule


def presence_track(role: str, state: str) -> Expect:
    if role in (ANON, BANNED):
        return E(NOT_DELIVERED)
    return E(NOT_DELIVERED, "f5-mute-end") if quieted(role, state) else E(TRACKED)


def changes_join(table: str, filtered: bool) -> Rule:
    """Which postgres_changes bindings are accepted at join (policies.py + routing.py)."""
    def rule(role: str, state: str) -> Expect:
        if not filtered:
            # unscoped bindings would carry every stream's rows: refused for every table
            # (routing.py scope_error); stream_cohosts was forgotten (issue 10 §6)
            return E(REFUSED, "f6-leaks" if table == "stream_cohosts" else None)
        if role == BANNED:
            return E(REFUSED, "f6-leaks" if table == "stream_cohosts" else None)
        if table == "stream_viewers":  # policies.py: seller, co-hosts and staff only
            return E(JOINED if role in HOSTS or role in STAFF else REFUSED)
        if table == "stream_cohosts" and role == ANON:
            # the co-host list is for signed-in users (README: GET …/cohosts needs a user token)
            return E(REFUSED, "f6-leaks")
        return E(JOINED)
    return rule


def changes_rows(table: str, filtered: bool) -> Rule:
    """Rows of the trigger sequence received on a binding: exactly when it was accepted."""
    join = changes_join(table, filtered)

    def rule(role: str, state: str) -> Expect:
        joined = join(role, state)
        if joined.outcome == JOINED and table in TRIGGERED[state]:
            return E(ROWS, joined.finding)
        return E(NO_ROWS, joined.finding)
    return rule


def no_hidden_bodies(role: str, state: str) -> Expect:
    """A deleted message's body and an edited message's original text never reach a client
    (issue 10 §6): only who can see chat rows at all is concerned."""
    if role == BANNED or state not in CHAT_OPEN:
        return E("clean")
    return E("clean", "f6-leaks")


def sanction_secrecy(role: str, state: str) -> Expect:
    """Anonymous members do not learn who was muted or banned (issue 10 §6)."""
    if role == ANON:
        return E("not told", "f6-leaks")
    return E("any")  # signed-in members: not specified by the issue


@dataclass(frozen=True)
class RealtimeCase:
    action: str
    rule: Rule
    event: str = ""
    canonical: bool = True
    table: str = ""
    filtered: bool = False
    rest: bool = False  # a broadcast through POST /realtime/v1/api/broadcast/{topic}/events/{event}
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.table:
            return f"{self.action} {self.table} {'stream-filtered' if self.filtered else 'unfiltered'}"
        if self.event:
            casing = "" if self.canonical else " (random casing)"
            return f"{'REST ' if self.rest else ''}{self.action} {self.event}{casing}"
        return self.action


def realtime_cases() -> tuple[RealtimeCase, ...]:
    cases: list[RealtimeCase] = [
        RealtimeCase("join public", join_public),
        RealtimeCase("join private", join_private),
        RealtimeCase("presence track", presence_track),
        RealtimeCase("broadcast", ordinary_broadcast, event=ORDINARY_EVENT),
    ]
    for rest in (False, True):
        for name in SERVER_EVENTS:
            for canonical in (True, False):
                cases.append(RealtimeCase("broadcast", server_event(canonical), event=name,
                                          canonical=canonical, rest=rest))
        for name in HOST_EVENTS:
            for canonical in (True, False):
                cases.append(RealtimeCase("broadcast", host_event(canonical), event=name,
                                          canonical=canonical, rest=rest))
    for table in (*CHANGE_TABLES, "*"):
        for filtered in (True, False):
            if table == "*":
                cases.append(RealtimeCase("changes join", lambda r, s: E(REFUSED), table=table,
                                          filtered=filtered))
                continue
            cases.append(RealtimeCase("changes join", changes_join(table, filtered),
                                      table=table, filtered=filtered))
            cases.append(RealtimeCase("changes rows", changes_rows(table, filtered),
                                      table=table, filtered=filtered))
    cases.append(RealtimeCase("no deleted or pre-edit chat bodies", no_hidden_bodies))
    cases.append(RealtimeCase("chat_sanction tells who", sanction_secrecy))
    return tuple(cases)


REALTIME_CASES = realtime_cases()

# --- role changes on an open socket (issue 10 §5: "role changes, bans, mutes and stream end must
# take effect on open sockets within a second") ------------------------------------------------

ROLE_CHANGES: dict[str, Expect] = {
    # a co-host demoted while connected: host events refused, stream_viewers rows stop
    "demoted co-host: webrtc:signal refused": E(NOT_DELIVERED, "f5-stale"),
    "demoted co-host: stream_viewers rows stop": E(NO_ROWS, "f5-stale"),
    # a buyer invited while connected gains host rights
    "invited buyer: webrtc:signal delivered": E(DELIVERED, "f5-stale"),
    # a mute and the stream's end stop client writes (see quieted())
    "muted buyer: broadcast refused": E(NOT_DELIVERED, "f5-mute-end"),
    "stream ended: a buyer's broadcast refused": E(NOT_DELIVERED, "f5-mute-end"),
    # a user banned while connected is cut off (stream_events.py _sanction: works today)
    "banned user: channel closed": E("closed"),
    "banned user: receives nothing more": E(NO_ROWS),
}
