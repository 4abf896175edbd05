"""Deployment files say what the service needs: checked structurally here (no container engine
runs in the tests), and docs/configuration.md is exactly what Settings generates."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from handoff.kernel.settings import Settings
from handoff.programs.configdoc import render

ROOT = Path(__file__).parent.parent
VARIABLES = {f"HANDOFF_{name.upper()}" for name in Settings.model_fields}


def test_the_configuration_page_is_what_settings_generates() -> None:
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == render(), ("docs/configuration.md is stale: run "
                                 "`python -m handoff.programs.configdoc > docs/configuration.md`")
    assert all(f"`{v}`" in written for v in VARIABLES)


def test_compose_runs_two_replicas_behind_one_port_on_a_durable_redis() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert re.search(r"--appendfsync (always|everysec)", command)
    assert "--maxmemory-policy noeviction" in command
    volume = next(v for v in redis["volumes"] if v.endswith(":/data"))
    assert volume.split(":")[0] in compose["volumes"]

    replicas = {name: s for name, s in services.items() if s.get("build") == "."}
    assert len(replicas) == 2
    for service in replicas.values():
        env = service["environment"]
        assert set(env) <= VARIABLES, set(env) - VARIABLES
        assert env["HANDOFF_REDIS_URL"].startswith("redis://redis:")
        assert "redis" in service["depends_on"]
        assert "ports" not in service, "replicas are reached through the balancer only"
    port = {int(s["environment"]["HANDOFF_PORT"]) for s in replicas.values()}.pop()

    balancer = services["lb"]
    assert balancer["ports"] == ["8080:8080"]
    mount = balancer["volumes"][0].split(":")
    config = (ROOT / mount[0]).read_text()
    upstreams = set(re.findall(r"^\s*server\s+([\w-]+):(\d+)", config, re.M))
    assert upstreams == {(name, str(port)) for name in replicas}
    assert re.search(r"listen\s+8080;", config)
    assert "proxy_buffering off" in config, "event streams must not be buffered"


def k8s() -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            documents[doc["kind"]] = doc
    return documents


def test_the_kubernetes_deployment_probes_readyz_and_healthz_on_its_port() -> None:
    docs = k8s()
    deployment = docs["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"][
        "labels"].items()
    (container,) = spec["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert int(docs["ConfigMap"]["data"]["HANDOFF_PORT"]) == ports["http"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {docs["ConfigMap"]["metadata"]["name"], docs["Secret"]["metadata"]["name"]}

    service = docs["Service"]
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)


def test_every_variable_the_deployment_sets_is_a_setting() -> None:
    docs = k8s()
    names = set(docs["ConfigMap"]["data"]) | set(docs["Secret"]["stringData"])
    assert names <= VARIABLES, names - VARIABLES
    assert "HANDOFF_REDIS_URL" in docs["Secret"]["stringData"]
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())
    assert all((ROOT / "deploy" / "k8s" / r).exists() for r in kustomization["resources"])


@pytest.mark.parametrize("kind", ["Deployment", "Service", "ConfigMap", "Secret"])
def test_each_kubernetes_manifest_validates_strictly_against_the_api_schema(kind: str) -> None:
    # Strict: a misspelt or misplaced field (say, a probe one level too deep) fails here
    # instead of being dropped by the API server without a word.
    kubernetes_validate.validate(k8s()[kind], "1.32", strict=True)


def test_behind_the_shipped_balancers_handoff_sees_clients_not_the_balancer() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    balancer = services["lb"]["networks"]["default"]["ipv4_address"]
    subnet = ipaddress.ip_network(
        compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(balancer) in subnet
    for service in (s for s in services.values() if s.get("build") == "."):
        trusted = Settings(trusted_proxies=json.loads(
            service["environment"]["HANDOFF_TRUSTED_PROXIES"])).trusted_proxies
        assert any(ipaddress.ip_address(balancer) in net for net in trusted)
        assert not any(ipaddress.ip_address(f"{subnet.network_address + 1}") in net
                       for net in trusted), "the network's gateway could forge addresses"
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    locations = re.findall(r"location[^{]*\{(.*?)\n        \}", config, re.S)
    assert locations and all(
        re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;", body)
        for body in locations), "every proxied location must name the client"

    configmap = k8s()["ConfigMap"]["data"]
    assert Settings(trusted_proxies=json.loads(configmap["HANDOFF_TRUSTED_PROXIES"])
                    ).trusted_proxies


def test_the_balancer_logs_paths_without_the_query_a_panel_token_travels_in() -> None:
    # Event streams carry the agent panel's token as `?access_token=`; nginx's default format
    # (`combined`, used wherever no access_log names another) logs the whole request line.
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    formats = dict(re.findall(r"^\s*log_format\s+(\S+)\s+((?:'[^']*'\s*)+);", config, re.M))
    access_logs = re.findall(r"^\s*access_log\s+([^;]+);", config, re.M)
    assert access_logs, "no access_log: nginx logs the request line, query string included"
    for directive in access_logs:
        target, *format_name = directive.split()
        if target == "off":
            continue
        assert format_name and format_name[0] in formats, f"{directive}: not a format of ours"
        logged = formats[format_name[0]]
        # The path, as a map of $uri that hides identities and card numbers (its behaviour is
        # tested on a real nginx in test_balancer_log.py).
        assert "$handoff_path" in logged and re.search(r"map\s+\$uri\s+\$handoff_path", config)
        assert not re.search(
            r"\$(request|request_uri|args|query_string|is_args|arg_\w+|http_referer)\b", logged)
