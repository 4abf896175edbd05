"""The shipped operations kit: the Grafana dashboard (deploy/grafana/handoff.json) and the
Prometheus alert rules (deploy/prometheus/alerts.yml) use only metrics a running service really
exports, and Prometheus' own promtool accepts the rules, their unit tests, every query of the
dashboard and a real scrape (deploy/check-monitoring; skipped without promtool, except under
CI, where .ci/run installs it).
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.scenario import build_world

Client = TestClient[Any, Any]
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
CHECK = DEPLOY / "check-monitoring"


def check_script() -> ModuleType:
    """deploy/check-monitoring, loaded as a module (it has no .py suffix: it is a command)."""
    loader = importlib.machinery.SourceFileLoader("check_monitoring", str(CHECK))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


async def scrape(client: Client, keys: Keys) -> str:
    """/metrics of a server that has served the seed scenario."""
    await build_world(client, keys)
    response = await client.get("/metrics")
    assert response.status == 200
    return await response.text()


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no promtool: CI must install it (apt-get install prometheus)")
        pytest.skip("no promtool (apt-get install prometheus to run this)")
    return found


async def test_every_metric_the_dashboard_and_the_alert_rules_name_is_exported(
        client: Client, keys: Keys) -> None:
    check = check_script()
    exported = check.exported(await scrape(client, keys))
    used = {n for _, e in check.dashboard_expressions() for n in check.NAME.findall(e)}
    used |= {n for e in check.alert_expressions() for n in check.NAME.findall(e)}
    assert used, "no metric found: the extraction is broken"
    assert sorted(used - exported) == []
    # The effort figures are all there (docs/kpis.md).
    for name in ("handoff_accepts_verified_total", "handoff_queue_reasks_total",
                 "handoff_reask_warnings_sent_anyway_total", "handoff_channel_switches_total",
                 "handoff_repeat_contacts_total", "handoff_alerts_total", "handoff_alerts_open",
                 "handoff_redis_up"):
        assert name in used, name


def test_the_dashboard_has_every_section_and_the_rules_every_alert() -> None:
    board = json.loads((DEPLOY / "grafana" / "handoff.json").read_text())
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert [r.split(" (")[0] for r in rows] == [
        "Traffic", "Errors", "Latency", "Hand-off flow", "Effort KPIs", "Webhooks", "Redis"]
    assert all(p.get("targets") for p in board["panels"] if p["type"] != "row")
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    for alert in ("HandoffWebhookDeadLetters", "HandoffHigh5xxRate", "HandoffHigh503Rate",
                  "HandoffHandoffsExpiring", "HandoffReaskRateHigh",
                  "HandoffRiskAlertsUnacknowledged", "HandoffRedisDown"):
        assert f"alert: {alert}\n" in rules, alert


async def test_promtool_accepts_the_rules_their_tests_the_dashboards_queries_and_a_scrape(
        client: Client, keys: Keys, tmp_path: Path) -> None:
    promtool()
    metrics = tmp_path / "metrics.txt"
    metrics.write_text(await scrape(client, keys))
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(CHECK), "--metrics", str(metrics)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "unit tests pass" in done.stdout


def test_promtool_refuses_a_dashboard_query_that_is_not_promql(tmp_path: Path) -> None:
    promtool()
    check = check_script()
    broken = tmp_path / "rules.yml"
    broken.write_text(json.dumps({"groups": [{"name": "g", "rules": [
        {"record": "x", "expr": check.plain('sum(rate(handoff_http_requests_total[$__rate_'
                                            'interval])')}]}]}))
    ok, out = check.promtool("check", "rules", str(broken))
    assert not ok and "parse error" in out
