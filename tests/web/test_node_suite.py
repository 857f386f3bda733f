"""Runs the browser client library's tests (`tests/web/*.test.mjs`, Node's test runner with
fast-check) as part of `make test`. Needs Node and `npm ci` (the Makefile's node-deps target)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.node
def test_browser_client_library_under_node() -> None:
    node = shutil.which("node")
    need(node is not None, "Node.js is not installed")
    need((ROOT / "node_modules" / "fast-check").is_dir(), "fast-check missing: run `npm ci`")
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "web").glob("*.test.mjs"))
    result = subprocess.run([str(node), "--test", *tests], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    summary = "\n".join(line for line in result.stdout.splitlines()
                        if line.startswith(("# pass", "# fail", "not ok")))
    assert result.returncode == 0, f"{summary}\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert "# fail 0" in result.stdout
