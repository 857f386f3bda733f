"""The REST problem catalogue (onair/problems.py) is the only source of problem types, and the
README's "Errors" table documents every one of them with its status.

The source checks read ``src/`` as text/AST, so a new ``Problem(...)`` with a literal slug, a
hand-built problem body or a new domain reason that has no catalogued type fails here before a
client ever sees an undocumented ``type``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from onair import errors, problems
from onair.domain import chat as chat_rules
from onair.metrics import families

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "onair"
CATALOGUE_FILE = SRC / "problems.py"


def _errors_table() -> dict[str, str]:
    """slug -> status cell of the README's `### Errors` table."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^### Errors\n(.*?)(?=^#)", readme, re.S | re.M)
    assert match, "README.md has no '### Errors' section"
    rows = {}
    for line in match.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[1] != "Status":
            rows[cells[0].strip("`")] = cells[1]
    return rows


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path)))
            for path in sorted(SRC.rglob("*.py")) if path != CATALOGUE_FILE]


def test_every_catalogued_type_is_documented_with_its_status() -> None:
    table = _errors_table()
    undocumented = sorted(set(problems.CATALOGUE) - set(table))
    assert undocumented == [], f"add these problem types to README.md's Errors table: {undocumented}"
    wrong = {slug: (table[slug], kind.status) for slug, kind in problems.CATALOGUE.items()
             if str(kind.status or "varies") not in table[slug]}
    assert wrong == {}, f"README status differs from the catalogue: {wrong}"
    stale = sorted(set(table) - set(problems.CATALOGUE))
    assert stale == [], f"README documents problem types that do not exist: {stale}"


def test_problems_are_made_only_by_the_catalogue() -> None:
    """No ``Problem(...)``/``ProblemType(...)`` call, ``Problem`` subclass or hand-built problem
    body (a dict with "type" and "title") anywhere in src/ but onair/problems.py."""
    found = []
    for path, tree in _modules():
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name in ("Problem", "ProblemType"):
                    found.append(f"{where}:{node.lineno} {name}(...)")
            elif isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if (getattr(base, "id", None) or getattr(base, "attr", None)) == "Problem":
                        found.append(f"{where}:{node.lineno} class {node.name}(Problem)")
            elif isinstance(node, ast.Dict):
                keys = {key.value for key in node.keys if isinstance(key, ast.Constant)}
                if {"type", "title"} <= keys:
                    found.append(f"{where}:{node.lineno} hand-built problem body")
    assert found == [], "make these from onair.problems instead:\n" + "\n".join(found)


def test_slugs_compared_in_src_are_catalogued() -> None:
    """``problem.type == "..."`` style comparisons name a real type (use ``KIND.matches``)."""
    unknown = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if not any(isinstance(side, ast.Attribute) and side.attr == "type"
                       and getattr(side.value, "id", "") == "problem" for side in sides):
                continue
            for side in sides:
                for const in ast.walk(side):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str) \
                            and const.value not in problems.CATALOGUE:
                        unknown.append(f"{path.relative_to(ROOT)}:{node.lineno} {const.value}")
    assert unknown == []


def test_chat_refusals_and_body_reasons_are_catalogued() -> None:
    """The slugs computed from domain values (looked up with ``problems.by_slug``)."""
    refusals = {refusal.value for refusal in chat_rules.Refusal}
    text = (SRC / "domain" / "text.py").read_text()
    reasons = set(re.findall(r'TextRejected\(\s*"([a-z-]+)"', text))
    assert {"empty", "too-long", "not-text"} <= reasons  # the pattern still finds them
    missing = sorted((refusals | {f"body-{reason}" for reason in reasons})
                     - set(problems.CATALOGUE))
    assert missing == [], f"catalogue these in onair/problems.py: {missing}"


def test_metric_labels_that_are_problem_types_are_catalogued() -> None:
    outcomes = set(families.CHAT_OUTCOMES) - {"created", "duplicate"}
    missing = sorted((outcomes | set(families.TOKEN_REFUSALS)) - set(problems.CATALOGUE))
    assert missing == []


def test_a_type_makes_its_problem() -> None:
    problem = problems.STREAM_NOT_FOUND("no stream with id 'x'", stream_id="x")
    assert problem.body() == {"type": "stream-not-found", "title": "Stream not found",
                              "status": 404, "detail": "no stream with id 'x'",
                              "stream_id": "x"}
    assert problems.STREAM_NOT_FOUND.matches(problem)
    assert not problems.STREAM_ENDED.matches(problem)
    assert problems.RATE_LIMITED(title="Sending too fast").title == "Sending too fast"
    assert problems.HTTP_ERROR(status=418).status == 418
    with pytest.raises(TypeError):
        problems.HTTP_ERROR()
    with pytest.raises(KeyError):
        problems.by_slug("no-such-type")


def test_errors_module_still_exports_problem() -> None:
    assert errors.Problem is problems.Problem
    assert errors.ProblemType is problems.ProblemType


def test_every_showcase_refusal_is_catalogued_with_its_status() -> None:
    """services/showcase.py turns a domain ShowcaseError into ``problems.by_slug(err.slug)``: an
    uncatalogued slug there would be a KeyError (a 500), so each one the domain raises is here."""
    source = (SRC / "domain" / "showcase.py").read_text()
    raised = {(int(status), slug) for status, slug in
              re.findall(r'ShowcaseError\(\s*(\d+),\s*"([a-z-]+)"', source)}
    assert {slug for _, slug in raised} >= {"invalid-product", "product-not-found", "no-deal"}
    for status, slug in raised:
        assert problems.CATALOGUE[slug].status == status, slug
