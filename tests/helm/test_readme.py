"""The chart README's values table is generated from values.yaml and must not drift;
every value in values.yaml is documented."""

from __future__ import annotations

import importlib.util

import pytest

from tests.helm.chart import CHART, ROOT

pytestmark = pytest.mark.helm


def _generator():
    spec = importlib.util.spec_from_file_location("values_table",
                                                  ROOT / "helm" / "tools" / "values_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_value_is_documented():
    gen = _generator()
    assert gen.undocumented((CHART / "values.yaml").read_text()) == []


def test_readme_values_table_is_current():
    gen = _generator()
    readme = (CHART / "README.md").read_text()
    expected = gen.rewrite(readme, (CHART / "values.yaml").read_text())
    assert readme == expected, "run: python3 helm/tools/values_table.py"


def test_readme_mentions_every_config_key():
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    for key in values["config"]:
        assert f"`config.{key}`" in readme, key
