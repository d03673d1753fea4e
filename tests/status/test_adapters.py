"""The two library adapters: the internals they use are where they expect them, they work
through the libraries' real code paths, and a moved internal fails with its name.

If one of these fails after a dependency upgrade, the message names the internal that
moved: update ``rrdsync/status/_healthcheck_adapter.py`` or ``_prometheus_adapter.py``
(or keep the pin in pyproject.toml) before shipping. The pins themselves are checked
in ``tests/unit/test_library_pins.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rrdsync._drift import LibraryDrift
from rrdsync.status import _healthcheck_adapter as hc
from rrdsync.status import _prometheus_adapter as prom


def test_healthcheck_internals_are_where_the_adapter_expects_them():
    hc.check()


def test_healthcheck_timer_ticks_through_the_librarys_own_run_loop(tmp_path: Path):
    ticks = threading.Event()

    class Timer(hc.PeriodicTimer):
        def tick(self) -> None:
            ticks.set()

    timer = Timer(prefix="t", interval=0.05, timeout=1.0, directory=tmp_path)
    assert timer.last_checkin == 0
    timer.healthy()
    assert time.time() - timer.last_checkin < 1
    timer.add_check(lambda: (True, "fine"))
    results = timer.results()
    assert [r["passed"] for r in results] == [True, True]  # our check + the check-in check
    doc = timer.document(results)
    assert doc["status"] is True and doc["name"] == "t"
    timer.start()
    try:
        assert ticks.wait(2), "HealthCheck.run() no longer calls the tick hook"
    finally:
        timer.stop()


def test_a_moved_healthcheck_internal_is_named(monkeypatch):
    monkeypatch.delattr(hc.HealthCheck, "_check_health")
    with pytest.raises(LibraryDrift, match=r"healthcheck-python: internal 'HealthCheck\._check_"
                                           r"health' moved.*_healthcheck_adapter\.py"):
        hc.check()
    monkeypatch.undo()
    original = hc.HealthCheck.__init__

    def init_without_checkin(self, *args, **kwargs):
        original(self, *args, **kwargs)
        del self._latest_checkin

    monkeypatch.setattr(hc.HealthCheck, "__init__", init_without_checkin)
    with pytest.raises(LibraryDrift, match=r"'HealthCheck\._latest_checkin'"):
        hc.check()
    with pytest.raises(LibraryDrift, match=r"'HealthCheck\._latest_checkin'"):
        hc.PeriodicTimer(prefix="t", interval=1, timeout=1, directory=Path("/tmp"))


def test_prometheus_internals_are_where_the_adapter_expects_them():
    prom.check()


def test_prometheus_files_are_named_by_our_identifier_and_merge_back(tmp_path: Path,
                                                                     monkeypatch):
    from prometheus_client import Counter, Gauge, values

    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # restored afterwards
    monkeypatch.setenv(prom.ENV_DIR, str(tmp_path))
    prom.use_multiprocess(tmp_path, lambda: "probe-key-1")
    c = Counter("probe_things", "h", ["destination"], registry=None)
    g = Gauge("probe_level", "h", ["destination"], registry=None, multiprocess_mode="livesum")
    c.labels("a:/x").inc(3)
    g.labels("a:/x").set(7)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["counter_probe-key-1.db", "gauge_livesum_probe-key-1.db"], names
    assert prom.file_kind(names[0]) == ("counter", "", "probe-key-1")
    assert prom.file_kind(names[1]) == ("gauge", "livesum", "probe-key-1")
    assert prom.is_live_gauge("livesum") and not prom.is_live_gauge("max")
    assert prom.file_kind("README") is None and prom.file_kind("gauge_x.db") is None
    merged = {s.name: s.value for m in prom.merge([str(tmp_path / n) for n in names])
              for s in m.samples}
    assert merged == {"probe_things_total": 3.0, "probe_level": 7.0}


def test_a_moved_prometheus_internal_is_named(monkeypatch):
    from prometheus_client import values

    monkeypatch.delattr(values, "MultiProcessValue")
    with pytest.raises(LibraryDrift, match=r"prometheus-client: internal 'prometheus_client\."
                                           r"values\.MultiProcessValue' moved.*"
                                           r"_prometheus_adapter\.py"):
        prom.check()

