"""The static gates of `make test`: ruff (the rule set in pyproject.toml) over src, tests and
bench, and mypy (strict on the domain, the realtime protocol and the hub, the default checks
elsewhere) over src. Any finding fails here with the tool's own report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `pip install -e '.[test]'` (it is in the test extra)")
    return path


def _run(*command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_ruff_finds_nothing() -> None:
    result = _run(_tool("ruff"), "check", "--no-cache", "--output-format", "concise",
                  "src", "tests", "bench", timeout=120)
    assert result.returncode == 0, f"ruff check src tests bench:\n{result.stdout}{result.stderr}"


@pytest.mark.slow
def test_mypy_finds_nothing() -> None:
    # The configuration ([tool.mypy] in pyproject.toml) names the files and the strict modules.
    result = _run(_tool("mypy"), timeout=600)
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout


@pytest.mark.parametrize("module", ["onair.domain.probe", "onair.realtime.protocol.probe",
                                    "onair.realtime.hub", "onair.services.probe"])
def test_mypy_is_strict_exactly_where_the_configuration_says(module: str, tmp_path: Path) -> None:
    """An unannotated function fails in a strict module and passes elsewhere: a typo in a module
    pattern (or `strict = true` in an override, which mypy applies to every module) shows here."""
    parts = module.split(".")
    folder = tmp_path.joinpath(*parts[:-1])
    folder.mkdir(parents=True)
    for depth in range(1, len(parts)):
        tmp_path.joinpath(*parts[:depth], "__init__.py").touch()
    probe = folder / f"{parts[-1]}.py"
    probe.write_text("def untyped(x):\n    return x\n")
    result = subprocess.run(
        [_tool("mypy"), "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental",
         "--follow-imports=silent", str(probe.relative_to(tmp_path))],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    strict = not module.startswith("onair.services.")
    assert ("no-untyped-def" in result.stdout) is strict, result.stdout + result.stderr
