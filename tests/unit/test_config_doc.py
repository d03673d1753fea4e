"""README.md's variable tables are generated from the configuration table and current."""

from __future__ import annotations

from rrdsync import config, config_doc


def test_readme_tables_are_current():
    text = config_doc.README.read_text()
    assert config_doc.render(text) == text, "run: python -m rrdsync.config_doc"
    assert config_doc.main(["--check"]) == 0


def test_every_variable_has_one_row_with_its_default():
    block = config_doc.tables()
    for var in config.TABLE:
        rows = [line for line in block.splitlines() if line.startswith(f"| `{var.name}` |")]
        assert len(rows) == 1, var.name
        if var.default:
            assert f"| `{var.default}` |" in rows[0]


def test_a_stale_table_is_detected(monkeypatch, tmp_path):
    readme = tmp_path / "README.md"
    text = config_doc.README.read_text()
    readme.write_text(text.replace("| `RRDSYNC_SETTLE` | `100ms` |", "| `RRDSYNC_SETTLE` | `1s` |"))
    monkeypatch.setattr(config_doc, "README", readme)
    assert config_doc.main(["--check"]) == 1
    assert config_doc.main([]) == 0
    assert readme.read_text() == text
