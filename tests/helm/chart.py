"""Rendering the chart with Helm's own engine (helm-python-sdk) and checking the result
against Kubernetes' schemas (kubernetes-validate). Shared by the tests in this directory."""

from __future__ import annotations

import copy
import shutil
import subprocess
import tomllib
import typing
from collections.abc import Iterator
from functools import cache
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

# Kinds from the Prometheus Operator's CRDs, which kubernetes-validate has no schema for:
# checked against the operator's own API types (see validate_crd).
CRD_KINDS = {("monitoring.coreos.com/v1", k) for k in ("ServiceMonitor", "PodMonitor",
                                                       "PrometheusRule")}

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
    """Every object rendered, hooks included, as `helm template` prints them (NOTES.txt
    left out)."""
    docs = []
    for path, text in sorted(render_files(values, chart, name).items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def is_hook(doc: dict) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def installed(values: dict[str, Any], chart: Path = CHART, name: str = RELEASE) -> list[dict]:
    """The objects `helm install` creates: hooks (the `helm test` pod) are left out."""
    return [d for d in objects(values, chart, name) if not is_hook(d)]


def hook_pod(docs: list[dict]) -> dict:
    """The `helm test` hook pod."""
    found = [d for d in docs if d["kind"] == "Pod"
             and d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def notes(values: dict[str, Any]) -> str:
    return next(t for p, t in render_files(values).items() if p.endswith("NOTES.txt"))


def validate(doc: dict, kube_version: str = KUBE_VERSION) -> None:
    """Strict schema validation: unknown fields and wrong types fail."""
    if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
        validate_crd(doc)
        return
    kubernetes_validate.validate(doc, kube_version, strict=True)


@cache
def _operator_types():
    # The Prometheus Operator's API types as pydantic models (cloudcoil's models are
    # generated from the operator's CRDs); imported once, it takes a few seconds.
    from cloudcoil.models.prometheus_operator import v1

    return v1


def validate_crd(doc: dict) -> None:
    """A Prometheus Operator object against the operator's own types: types and enums by
    pydantic, and (strictly, as kubernetes-validate does for core kinds) no field that
    the CRD does not define, at any depth."""
    model = getattr(_operator_types(), doc["kind"])
    model.model_validate(doc)
    unknown = _unknown_fields(model, doc, doc["kind"])
    assert not unknown, f"fields the {doc['kind']} CRD does not define: {unknown}"


def _unknown_fields(annotation: Any, value: Any, where: str) -> list[str]:
    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        found = [_unknown_fields(a, value, where) for a in args if a is not type(None)]
        return min(found, key=len) if found else []
    if origin in (list, typing.List) and isinstance(value, list):  # noqa: UP006
        return [e for i, v in enumerate(value) for e in _unknown_fields(args[0], v,
                                                                        f"{where}[{i}]")]
    if origin in (dict, typing.Dict) and isinstance(value, dict):  # noqa: UP006
        return [e for k, v in value.items() for e in _unknown_fields(args[1], v,
                                                                     f"{where}.{k}")]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
            and isinstance(value, dict):
        fields = {(f.alias or n): f for n, f in annotation.model_fields.items()}
        out = []
        for key, v in value.items():
            if key not in fields:
                out.append(f"{where}.{key}")
            else:
                out += _unknown_fields(fields[key].annotation, v, f"{where}.{key}")
        return out
    return []


def promtool_check_rules(rule: dict, tmp: Path) -> str:
    """`promtool check rules` on a PrometheusRule's groups (Debian's prometheus package)."""
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


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


def engine_accepts(env: dict[str, str], role: str = "sidecar") -> None:
    """rrdsync's own configuration loader accepts this environment (no file checks)."""
    from rrdsync import config

    if role == "receiver":
        config.load_receiver(env)
    else:
        config.load_sidecar(env, require_paths=False)


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
