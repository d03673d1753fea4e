"""Each library whose internals rrdsync uses is pinned to the versions its adapter was
written for, and the installed version is one of them (see the adapters' docstrings)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

from rrdsync import _watchdog_adapter
from rrdsync.status import _healthcheck_adapter, _prometheus_adapter

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dist,adapter", [("healthcheck-python", _healthcheck_adapter),
                                          ("prometheus-client", _prometheus_adapter),
                                          ("watchdog", _watchdog_adapter)])
def test_pyproject_pins_the_range_the_adapter_was_written_for(dist: str, adapter: ModuleType):
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if re.match(rf"{dist}\b", d)]
    assert any(s.operator == "<" for s in req.specifier), f"{dist} has no upper bound"
    assert adapter.WRITTEN_FOR in req.specifier
    assert version(dist) in req.specifier, f"installed {dist} {version(dist)} not in {req}"
    assert adapter.__name__.replace(".", "/") + ".py" in _comment(dist), \
        f"{dist}'s line in pyproject.toml should name its adapter"


def _comment(dist: str) -> str:
    """The comment on the dependency's line in pyproject.toml."""
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.strip().startswith(f'"{dist}'):
            return line.partition("#")[2]
    return ""
