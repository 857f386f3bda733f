"""Issue 11 §3: the alert rules are valid and fire (and stay quiet) as their unit tests say.

promtool comes from Debian's `prometheus` package (.ci/run installs it); without it the test
skips, or fails under ONAIR_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    need(shutil.which("promtool") is not None, "promtool not installed (Debian package prometheus)")
    return subprocess.run(["promtool", *args], check=False, cwd=DEPLOY, capture_output=True, text=True,
                          timeout=120)


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_unit_tests_pass() -> None:
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def alerts() -> dict[str, dict[str, object]]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_every_alert_has_a_runbook_severity_and_unit_tests_both_ways() -> None:
    tests = yaml.safe_load((DEPLOY / "alerts_test.yml").read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    for name, rule in alerts().items():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and len(annotations.get("runbook", "")) > 40, name
        assert rule["labels"]["severity"] in ("page", "ticket"), name  # type: ignore[index]
        assert name in firing, f"{name} has no test where it fires"
        assert name in quiet, f"{name} has no test where it stays quiet"


def test_the_required_alerts_exist() -> None:
    assert {"OnairHighErrorRatio", "OnairChatSendLatencyBudgetBurn",
            "OnairTokenIssueLatencyBudgetBurn", "OnairNotReady", "OnairBrokerDown",
            "OnairReaperStalled", "OnairSlowConsumerSpike",
            "OnairChatCommitFailures", "OnairBlackScreens"} <= set(alerts())


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each Grafana query (its variables filled in) as a recording rule: promtool parses it."""
    import json

    dashboard = json.loads((DEPLOY.parent / "grafana" / "onair.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]
    assert exprs
    rules = [{"record": f"onair:dashboard_query_{i}",
              "expr": expr.replace("$__rate_interval", "5m").replace("$job", "onair")}
             for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
