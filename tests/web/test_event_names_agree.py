"""The server's rule (Python) and the browser's rule (client/event_names.js) fold and classify
every name of one generated corpus identically: each single-code-point substitution of a reserved
name that any JS locale's casing maps onto it (found by Node over all of Unicode), each one the
table knows, every ignorable code point slipped into a name, and random mixed-script names."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from onair.realtime.protocol.event_names import (
    _TABLE,
    HOST_ONLY_PREFIXES,
    SERVER_ONLY,
    fold,
    reserved_for,
)
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "tests" / "web" / "support" / "event_names_cli.mjs"
RESERVED = sorted(SERVER_ONLY) + list(HOST_ONLY_PREFIXES)


def _node(mode: str, stdin: str = "") -> object:
    node = shutil.which("node")
    need(node is not None, "Node.js is not installed")
    run = subprocess.run([str(node), str(CLI), mode], check=False, input=stdin, cwd=ROOT,
                         capture_output=True, text=True, encoding="utf-8", timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def _table_substitutions() -> list[str]:
    by_target: dict[str, list[str]] = {}
    for cp, target in _TABLE.items():
        if target:
            by_target.setdefault(target, []).append(chr(cp))
    return [name[:i] + x + name[i + 1:] for name in RESERVED for i, c in enumerate(name)
            for x in by_target.get(c, [])]


def _random_names(n: int) -> list[str]:
    rng = random.Random(10)
    pools = ["abcdefghijklmnopqrstuvwxyz_:ABCDEFGHIJKLMNOPQRSTUVWXYZ", "İıſKÅßﬀﬆǅ",
             "ＡＢＳＴＥＷｓｔｒｅａｍ＿：", "\u0301\u0307\u200b\u200d\u00ad\ufe0f", "éèçñøΣσςДЖ",
             "𝐬𝐭𝐫𝐞𝐚𝐦𝓼𝓽", "\x00\t -.\U0010ffff\ufffd"]
    names = []
    for _ in range(n):
        base = rng.choice([*RESERVED, "reaction", "signal", ""])
        chars = list(base)
        for _ in range(rng.randint(0, 4)):
            pos = rng.randint(0, len(chars))
            chars.insert(pos, rng.choice(rng.choice(pools)))
        if chars and rng.random() < 0.5:
            chars[rng.randrange(len(chars))] = rng.choice(rng.choice(pools))
        names.append("".join(chars))
    return names


@pytest.mark.node
def test_python_and_browser_rules_agree_on_a_generated_corpus() -> None:
    js_variants = _node("variants")
    assert isinstance(js_variants, list) and len(js_variants) > 1000
    escaped = [ascii(n) for n in js_variants if reserved_for(n) is None]
    assert escaped == []  # every spelling some JS locale folds onto a reserved name is reserved

    ignorables = [cp for cp, v in _TABLE.items() if v is None]
    corpus = sorted(set(
        js_variants + _table_substitutions() + _random_names(3000) + RESERVED
        + [f"str{chr(cp)}eam_state" for cp in ignorables] + [f"webrtc{chr(cp)}:x" for cp in ignorables[::7]]
        + ["reaction", "signal", "STREAM_STATE", "WEBRTC:signal", "Seller:state", "TOKEN_RENEW"]))
    python = [[fold(n), reserved_for(n)] for n in corpus]
    browser = _node("classify", json.dumps(corpus))
    assert isinstance(browser, list) and len(browser) == len(corpus)
    differ = [(ascii(n), p, b) for n, p, b in zip(corpus, python, browser) if p != b]
    assert differ[:10] == []
    assert sum(1 for _, r in python if r is not None) > 5000
