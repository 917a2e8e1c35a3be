"""The alerts (deploy/prometheus/msc4191-shim.rules.yml and its PrometheusRule) and the metrics
they read, checked by Debian's promtool (`make test` installs it) and against a real shim process.

- `promtool check rules` on the rule file and on the PrometheusRule's groups;
- `promtool test rules`: each alert fires on the series that should fire it, and only then;
- every metric a rule reads is in a live exposition of a real shim process, whose exposition
  `promtool check metrics` finds nothing in (no `*_created` series either);
- the legacy-names rule's stable names are the shim's own (shim/vocabulary.py).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from shim.vocabulary import STABLE_ACTIONS
from tests.conftest import ShimProcessFactory
from tests.deploy.tools import DEPLOY, require_tool
from tests.support.e2e import portal
from tests.support.loopback import shim_settings

RULES = DEPLOY / "prometheus" / "msc4191-shim.rules.yml"
PROMETHEUS_RULE = DEPLOY / "ess-helm" / "monitoring" / "msc4191-shim-prometheusrule.yaml"
JOB = "msc4191-shim"
#: PromQL names that are functions, keywords or label matchers' values, not metrics
_NOT_METRICS = {
    "sum",
    "by",
    "rate",
    "increase",
    "absent",
    "up",
    "job",
    "instance",
    "incoming",
    "outcome",
    "result",
    "reason",
}


def groups() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return loaded


def rules() -> list[dict[str, Any]]:
    return [rule for group in groups() for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True)


def test_promtool_accepts_the_rule_file() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_the_prometheus_rule_carries_the_same_groups(tmp_path: Path) -> None:
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    assert (resource["apiVersion"], resource["kind"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    )
    assert resource["spec"]["groups"] == groups()
    extracted = tmp_path / "from-prometheusrule.yml"
    extracted.write_text(yaml.safe_dump({"groups": resource["spec"]["groups"]}), encoding="utf-8")
    done = promtool("check", "rules", str(extracted))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_selects_the_shim_job_and_says_what_to_do() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(set(names)) == len(names)
    for rule in rules():
        assert f'job="{JOB}"' in rule["expr"], rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]
    severity = {rule["alert"]: rule["labels"]["severity"] for rule in rules()}
    assert severity["MSC4191ShimLegacyActionNamesSeen"] == "info"


def test_the_legacy_names_rule_counts_every_name_but_the_stable_ones() -> None:
    (rule,) = [r for r in rules() if r["alert"] == "MSC4191ShimLegacyActionNamesSeen"]
    match = re.search(r'incoming!~"none\|other\|org\\\\\.matrix\\\\\.\(([a-z_|]+)\)"', rule["expr"])
    assert match, rule["expr"]
    stable = {f"org.matrix.{name}" for name in match.group(1).split("|")}
    assert stable == set(STABLE_ACTIONS)


# ---- promtool test rules: the alerts fire on what should fire them -----------------------------

SERIES = {
    # the target stops answering after 2 minutes
    f'up{{job="{JOB}", instance="a:9090"}}': "1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
    f'up{{job="{JOB}", instance="b:9090"}}': "1x20",
    # b: 10 % of its requests fail upstream; a: none
    f'msc4191_shim_requests_total{{job="{JOB}", instance="b:9090", kind="passthrough", '
    'status_class="2xx"}': "0+90x20",
    f'msc4191_shim_requests_total{{job="{JOB}", instance="b:9090", kind="passthrough", '
    'status_class="5xx"}': "0+10x20",
    f'msc4191_shim_upstream_errors_total{{job="{JOB}", instance="b:9090", reason="refused"}}': (
        "0+10x20"
    ),
    f'msc4191_shim_requests_total{{job="{JOB}", instance="a:9090", kind="passthrough", '
    'status_class="2xx"}': "0+100x20",
    f'msc4191_shim_upstream_errors_total{{job="{JOB}", instance="a:9090", reason="refused"}}': (
        "0x20"
    ),
    # b served a stale document once, at 3 minutes
    f'msc4191_shim_discovery_documents_total{{job="{JOB}", instance="b:9090", outcome="stale"}}': (
        "0 0 0 1x17"
    ),
    # a reload of b was refused at 2 minutes
    f'msc4191_shim_config_reloads_total{{job="{JOB}", instance="b:9090", result="error"}}': (
        "0 0 1x18"
    ),
    # legacy and stable names keep arriving at b
    f'msc4191_shim_deeplink_translations_total{{job="{JOB}", instance="b:9090", '
    'incoming="org.matrix.session_end", sent="org.matrix.session_end", outcome="passthrough"}': (
        "0+1x20"
    ),
    f'msc4191_shim_deeplink_translations_total{{job="{JOB}", instance="b:9090", '
    'incoming="org.matrix.device_delete", sent="org.matrix.session_end", outcome="redirect"}': (
        "0+1x20"
    ),
    f'msc4191_shim_deeplink_translations_total{{job="{JOB}", instance="b:9090", '
    'incoming="none", sent="none", outcome="passthrough"}': "0+1x20",
}


def _alert(name: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": label_set} for label_set in labels],
    }


ALERT_TESTS = [
    _alert("MSC4191ShimDown", "5m"),  # down for 3 minutes: not yet
    _alert("MSC4191ShimDown", "8m", {"severity": "critical", "job": JOB, "instance": "a:9090"}),
    _alert("MSC4191ShimAbsent", "18m"),
    _alert("MSC4191ShimUpstreamErrors", "8m"),  # pending: `for: 10m`
    _alert(
        "MSC4191ShimUpstreamErrors",
        "16m",
        {"severity": "warning", "job": JOB, "instance": "b:9090"},
    ),
    _alert(
        "MSC4191ShimDiscoveryServedStale",
        "9m",
        {"severity": "warning", "job": JOB, "instance": "b:9090"},
    ),
    _alert("MSC4191ShimDiscoveryServedStale", "19m"),  # nothing stale in the last 10 minutes
    _alert(
        "MSC4191ShimReloadRefused",
        "3m",
        {"severity": "warning", "job": JOB, "instance": "b:9090", "result": "error"},
    ),
    _alert("MSC4191ShimReloadRefused", "19m"),
    _alert(
        "MSC4191ShimLegacyActionNamesSeen",
        "10m",
        {"severity": "info", "job": JOB, "incoming": "org.matrix.session_end"},
    ),
]


def test_the_alerts_fire_on_what_should_fire_them(tmp_path: Path) -> None:
    """Firing is the expressions', durations' and labels' business: the annotations (checked
    by `promtool check rules` above) are left out, so the expected alerts need not repeat them."""
    stripped = {
        "groups": [
            {
                **group,
                "rules": [
                    {k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]
                ],
            }
            for group in groups()
        ]
    }
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(yaml.safe_dump(stripped), encoding="utf-8")
    tested = {test["alertname"] for test in ALERT_TESTS}
    assert tested == {rule["alert"] for rule in rules()}, "every alert has a test"
    unit = {
        "rule_files": [str(rule_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
                "alert_rule_test": ALERT_TESTS,
            }
        ],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(unit), encoding="utf-8")
    done = promtool("test", "rules", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


# ---- the metrics the rules read, on a real process ----------------------------------------------


async def _exposition(shim_process_factory: ShimProcessFactory) -> str:
    async with portal("mas-0.9") as upstream:
        shim = await shim_process_factory(shim_settings(upstream))
        async with aiohttp.ClientSession() as session:
            for target in (
                "/account/?action=org.matrix.device_delete&device_id=A",
                "/account/?action=org.matrix.session_end&device_id=A",
                "/.well-known/openid-configuration",
                "/elsewhere",
            ):
                async with session.get(shim.url + target, allow_redirects=False) as response:
                    await response.read()
            async with session.get(shim.admin_url + "/metrics") as response:
                assert response.status == 200
                return await response.text()


async def test_a_live_exposition_passes_promtool_and_has_what_the_rules_read(
    shim_process_factory: ShimProcessFactory,
) -> None:
    text = await _exposition(shim_process_factory)
    checker = await asyncio.create_subprocess_exec(
        require_tool("promtool"),
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    said, _ = await checker.communicate(text.encode())
    assert checker.returncode == 0, said.decode()
    assert said == b"", f"promtool found something to say: {said.decode()}"
    assert "_created" not in text
    families = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))
    exposed = families | {f"{f}_total" for f in families} | {f"{f}_bucket" for f in families}
    for rule in rules():
        for name in set(re.findall(r"\b([a-z_][a-z0-9_]*)\b(?=\{|\[)", rule["expr"])):
            if name not in _NOT_METRICS:
                assert name in exposed, (rule["alert"], name)
    for name in (
        "msc4191_shim_request_duration_seconds",
        "msc4191_shim_requests_in_flight",
        "msc4191_shim_discovery_cache_age_seconds",
    ):
        assert name in families, name
