"""Reserved broadcast event names (issue 10 §2): one fold rule, reserved under any spelling a
client could match; the stream policy refuses every spelling exactly as the canonical name."""

from __future__ import annotations

import functools
import json
import unicodedata
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onair.realtime.policies import StreamFacts, StreamPolicy
from onair.realtime.protocol import event_names_table
from onair.realtime.protocol.event_names import (
    _TABLE,
    HOST,
    HOST_ONLY_PREFIXES,
    SERVER,
    SERVER_ONLY,
    fold,
    reserved_for,
)

RESERVED = sorted(SERVER_ONLY) + list(HOST_ONLY_PREFIXES)
SEEN_BY_PAGES = {"stream_state", "viewer_count", "token_renew", "seller:state", "webrtc:signal"}
SENT_BY_SERVICES = {"stream_state", "viewer_count", "token_renew", "chat_sanction", "chat_settings",
                    "showcase"}
ORDINARY = ["reaction", "signal", "cursor", "chat", "stream", "state", "webrtc", "seller",
            "stream_state2", "my_stream_state", "stream state", "webrtc_signal", "sellers:x",
            "REACTION", "Signal", "café", "stream-state", "token", "viewer"]


def test_every_event_the_pages_or_services_treat_as_trusted_is_reserved() -> None:
    assert {n for n in SENT_BY_SERVICES if reserved_for(n) != SERVER} == set()
    assert reserved_for("webrtc:signal") == reserved_for("seller:state") == HOST
    assert all(reserved_for(n) is not None for n in SEEN_BY_PAGES)
    assert reserved_for("signal") is None  # viewers → host signalling is open on purpose


def test_reserved_names_are_folded_ascii() -> None:
    for name in RESERVED:
        assert name.isascii() and fold(name) == name


@pytest.mark.parametrize("name", ["STREAM_STATE", "Stream_State", "TOKEN_RENEW", "ſtream_state",
                                  "ＳＴＲＥＡＭ_ＳＴＡＴＥ", "ＳＴＲＥＡＭ＿ＳＴＡＴＥ", "to\u212aen_renew",
                                  "v\u0130ewer_count", "v\u0131ewer_count", "VİEWER_COUNT",
                                  "stre\u0301am_state", "stream\u200b_state", "CHAT_ſANCTION",
                                  "chat_\U0001d42cettings"])
def test_spellings_of_server_events_are_server_only(name: str) -> None:
    assert reserved_for(name) == SERVER


@pytest.mark.parametrize("name", ["WEBRTC:signal", "Webrtc:offer", "Seller:state", "SELLER:STATE",
                                  "ｗｅｂｒｔｃ：signal", "seller\ufe55x", "ſeller:x", "webrtc\u0308:x"])
def test_spellings_of_host_prefixes_are_host_only(name: str) -> None:
    assert reserved_for(name) == HOST


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_names_stay_open(name: str) -> None:
    assert reserved_for(name) is None


@functools.cache
def _variants_of(c: str) -> list[str]:
    """The characters a client could send for ``c``: both cases and every table entry folding to it."""
    return sorted({c, c.upper()} | {chr(cp) for cp, v in _TABLE.items() if v == c})


_IGNORABLE = sorted(chr(cp) for cp, v in _TABLE.items() if v is None)


@st.composite
def spelling(draw: st.DrawFn, name: str) -> str:
    out = []
    for c in name:
        out.append(draw(st.sampled_from(_variants_of(c))))
        if draw(st.integers(0, 9)) == 0:
            out.append(draw(st.sampled_from(_IGNORABLE)))
    return "".join(out)


@given(st.sampled_from(sorted(SERVER_ONLY)).flatmap(lambda n: st.tuples(st.just(n), spelling(n))))
@settings(max_examples=500)
def test_random_spellings_of_server_events_are_reserved(case: tuple[str, str]) -> None:
    name, sent = case
    assert fold(sent) == name
    assert reserved_for(sent) == SERVER


@given(st.sampled_from(HOST_ONLY_PREFIXES).flatmap(spelling), st.text(max_size=12))
@settings(max_examples=300)
def test_random_spellings_of_host_prefixes_are_reserved(prefix: str, rest: str) -> None:
    assert reserved_for(prefix + rest) == HOST


@given(st.sampled_from(RESERVED), st.data())
def test_python_casings_and_normal_forms_never_escape(name: str, data: st.DataObject) -> None:
    """Whatever Python itself would do to a spelling (case maps, casefold, NFKC/NFKD)."""
    sent = data.draw(spelling(name))
    for variant in (sent.lower(), sent.upper(), sent.casefold(), sent.swapcase(),
                    unicodedata.normalize("NFKC", sent), unicodedata.normalize("NFKD", sent),
                    unicodedata.normalize("NFKC", sent).casefold()):
        if reserved_for(variant) == reserved_for(name):
            continue
        # A casing may turn a dropped mark into a letter of its own (U+0345 COMBINING GREEK
        # YPOGEGRAMMENI upper-cases to GREEK CAPITAL IOTA): then the variant is a different name,
        # which is fine exactly when no client's lowering brings it back onto the reserved one.
        lowered = {variant.lower(), variant.casefold(), unicodedata.normalize("NFKC", variant).casefold()}
        assert not any(low == name or (name.endswith(":") and low.startswith(name)) for low in lowered), \
            ascii(variant)
        assert fold(variant) != fold(name), ascii(variant)


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=30))
def test_ascii_names_are_reserved_exactly_when_their_lowercase_is(name: str) -> None:
    lowered = name.lower()
    expected = SERVER if lowered in SERVER_ONLY else HOST if lowered.startswith(HOST_ONLY_PREFIXES) else None
    assert reserved_for(name) == expected


@given(st.text(max_size=20), st.text(max_size=20))
def test_fast_and_slow_paths_agree(a: str, b: str) -> None:
    assert fold(f"{a}\u00e9{b}") == f"{fold(a)}e{fold(b)}"


def test_committed_table_covers_this_pythons_unicode() -> None:
    """The JSON file is generated (``python -m onair.realtime.protocol.event_names_table``); every
    mapping this interpreter derives must be in it, so an upgrade cannot silently open a hole."""
    data = json.loads(event_names_table.TABLE_PATH.read_text(encoding="utf-8"))
    ignorable, folds = event_names_table.derive_table(event_names_table.alphabet_of(data))
    committed_ignorable = {cp for first, last in data["ignorable"] for cp in range(first, last + 1)}
    derived_ignorable = {cp for first, last in ignorable for cp in range(first, last + 1)}
    assert derived_ignorable - committed_ignorable == set()
    committed = {ch: t for t, chars in data["fold"].items() for ch in chars}
    missing = {ch: t for t, chars in folds.items() for ch in chars if committed.get(ch) != t}
    assert missing == {}


# --- the policy -------------------------------------------------------------------------------

def _principal(user: str | None, role: str) -> SimpleNamespace:
    return SimpleNamespace(user_id=user, role=role)


def _policy() -> StreamPolicy:
    policy = StreamPolicy()
    policy.pin("s1")
    policy.store("s1", StreamFacts(seller_id="seller", cohosts={"cohost"}, banned={"banned"}))
    return policy


FORGED_SERVER = ["stream_state", "STREAM_STATE", "TOKEN_RENEW", "ſtream_state", "ＳＴＲＥＡＭ_ＳＴＡＴＥ",
                 "Viewer_Count", "chat_sanction", "CHAT_SETTINGS"]
FORGED_HOST = ["webrtc:signal", "WEBRTC:signal", "Seller:state", "ſeller:state", "ｗｅｂｒｔｃ：offer"]


@pytest.mark.parametrize("event", FORGED_SERVER)
@pytest.mark.parametrize("who", [("buyer", "buyer"), (None, "anon"), ("seller", "seller"),
                                 ("cohost", "buyer"), ("mod", "moderator"), ("adm", "admin")])
def test_server_events_in_any_spelling_only_from_the_service_role(
        event: str, who: tuple[str | None, str]) -> None:
    policy = _policy()
    assert not policy.allowed(_principal(*who), "stream:s1", "broadcast", "write", event=event)
    assert policy.allowed(_principal("svc", "service"), "stream:s1", "broadcast", "write", event=event)


@pytest.mark.parametrize("event", FORGED_HOST)
def test_host_events_in_any_spelling_only_from_hosts_and_staff(event: str) -> None:
    policy = _policy()
    allowed = lambda user, role: policy.allowed(
        _principal(user, role), "stream:s1", "broadcast", "write", event=event)
    assert not allowed("buyer", "buyer") and not allowed(None, "anon")
    assert not allowed("other-seller", "seller") and not allowed("banned", "buyer")
    assert allowed("seller", "seller") and allowed("cohost", "buyer") and allowed("mod", "moderator")


def test_ordinary_events_stay_open_to_signed_in_members() -> None:
    policy = _policy()
    for event in ORDINARY:
        assert policy.allowed(_principal("buyer", "buyer"), "stream:s1", "broadcast", "write", event=event)
    # reading a topic never depends on an event name
    assert policy.allowed(_principal("buyer", "buyer"), "stream:s1", "broadcast", "read")
