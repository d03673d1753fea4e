"""Rendering the chart with Helm's own engine (helm-python-sdk) and checking the result
against Kubernetes' schemas (kubernetes-validate). Shared by the tests in this directory."""

from __future__ import annotations

import copy
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "rrdsync"
EXAMPLES = CHART / "examples"
PARENT_EXAMPLE = EXAMPLES / "opennms-sidecar"
RELEASE = "rel"
NAMESPACE = "rrd"

# The newest Kubernetes the installed kubernetes-validate ships schemas for (1.37 with
# kubernetes-validate 1.37.0).
KUBE_VERSION = kubernetes_validate.latest_version()

# Kinds from CRDs that kubernetes-validate has no schema for; checked structurally.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

# The smallest values a sidecar install accepts (the same as ci/minimal-values.yaml).
MINIMAL: dict[str, Any] = {
    "config": {"dest": "rrdsync@receiver.rrd.svc:/", "sshPort": 2222},
    "ssh": {"privateKey": "PRIVATE-KEY-SENTINEL",
            "knownHosts": "[receiver.rrd.svc]:2222 ssh-ed25519 KNOWN-HOSTS-SENTINEL"},
    "source": {"existingClaim": "opennms-rrd"},
}
RECEIVER: dict[str, Any] = {
    "role": "receiver",
    "receiver": {"authorizedKeys": ["ssh-ed25519 AUTHORIZED-KEY-SENTINEL sidecar"]},
}


def values_files() -> list[Path]:
    """Every values file shipped: chart-testing sets (ci/) and documented examples."""
    return sorted((CHART / "ci").glob("*-values.yaml")) + sorted(EXAMPLES.glob("*-values.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge, as `-f a.yaml -f b.yaml` would."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def render_files(
    values: dict[str, Any], chart: Path = CHART, name: str = RELEASE
) -> dict[str, str]:
    with helm.Chart.load(str(chart)) as ch:
        return ch.render(values, name=name, namespace=NAMESPACE, is_install=True)


def objects(values: dict[str, Any], chart: Path = CHART, name: str = RELEASE) -> list[dict]:
    """The Kubernetes objects a release would create (NOTES.txt left out)."""
    docs = []
    for path, text in sorted(render_files(values, chart, name).items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def notes(values: dict[str, Any]) -> str:
    return next(t for p, t in render_files(values).items() if p.endswith("NOTES.txt"))


def validate(doc: dict) -> None:
    """Strict schema validation: unknown fields and wrong types fail."""
    if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
        assert doc["metadata"]["name"] and doc["spec"]["endpoints"], doc
        return
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_spec(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs: list[dict], name: str = "rrdsync") -> dict:
    return next(c for c in pod_spec(docs)["containers"] if c["name"] == name)


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)
    elif isinstance(node, str):
        yield node


def package_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def parent_chart(tmp: Path) -> Path:
    """The OpenNMS example parent chart with this chart as its `charts/rrdsync`
    dependency (what `helm dependency update` would vendor)."""
    dst = tmp / "opennms-sidecar"
    shutil.copytree(PARENT_EXAMPLE, dst)
    shutil.copytree(CHART, dst / "charts" / "rrdsync", ignore=shutil.ignore_patterns("examples"))
    return dst
