"""What one rsync run means for each path it carried (issue: `_settle_batch` had no table)."""

from __future__ import annotations

from rrdsync.batch import Entry
from rrdsync.outcome import Sig, settle
from rrdsync.rsync_output import Item
from rrdsync.transfer import Result

ROOT = "/src"
SIG = Sig(1, 38232, 7)


def entries(*paths: str) -> dict[str, Entry]:
    return {p: Entry(10.0, 10.0, 1000.0) for p in paths}


def run(code: int, sent: list[str], stderr: str = "", interrupted: bool = False) -> Result:
    items = [Item("sent", p, 100, p.encode()) for p in sent]
    return Result(code, 0.1, items=items, stderr=stderr, interrupted=interrupted)


def test_clean_run_confirms_every_path_with_its_lag():
    b = entries("a.rrd", "b.rrd")
    out = settle(b, run(0, ["a.rrd", "b.rrd"]), ROOT, {"a.rrd": SIG, "b.rrd": SIG},
                 lambda p: SIG, done_wall=1002.5)
    assert set(out.confirmed) == {"a.rrd", "b.rrd"} and out.lags == [2.5, 2.5]
    assert not out.requeue and not out.failed and out.dest_error is None


def test_a_run_that_did_not_complete_confirms_nothing():
    b = entries("a.rrd", "b.rrd")
    for res in (run(12, ["a.rrd"], "connection unexpectedly closed"), run(255, []),
                run(0, ["a.rrd", "b.rrd"], interrupted=True), run(30, ["a.rrd"])):
        out = settle(b, res, ROOT, {}, lambda p: SIG, 0.0)
        assert out.requeue == b and not out.confirmed and out.dest_error


def test_a_file_changed_while_sent_goes_again():
    b = entries("a.rrd", "b.rrd")
    other = Sig(2, 38232, 7)
    out = settle(b, run(0, ["a.rrd", "b.rrd"]), ROOT, {"a.rrd": SIG, "b.rrd": SIG},
                 lambda p: other if p == "a.rrd" else SIG, 0.0)
    assert list(out.requeue) == ["a.rrd"] and out.raced == 1 and list(out.confirmed) == ["b.rrd"]


def test_partial_run_fails_only_the_named_paths():
    b = entries("snmp/1/a.rrd", "snmp/1/b.rrd", "snmp/2/c.rrd", "snmp/3/d.rrd")
    stderr = ('rsync: [receiver] mkstemp "/srv/rrd/snmp/1/.a.rrd.Xy12Zw" failed: '
              "Permission denied (13)\n"
              'rsync: [sender] send_files failed to open "/src/snmp/2/c.rrd": Permission '
              "denied (13)\n"
              "rsync error: some files/attrs were not transferred (code 23)\n")
    out = settle(b, run(23, ["snmp/1/a.rrd", "snmp/1/b.rrd", "snmp/3/d.rrd"], stderr), ROOT,
                 {}, lambda p: SIG, 0.0)
    assert {(f.path, f.side) for f in out.failed} == {("snmp/1/a.rrd", "destination"),
                                                     ("snmp/2/c.rrd", "source")}
    assert set(out.confirmed) == {"snmp/1/b.rrd", "snmp/3/d.rrd"}
    assert out.dest_error is None and not out.requeue


def test_an_unpinnable_destination_error_requeues_all_and_asks_to_split():
    b = entries("a.rrd", "b.rrd")
    stderr = "rsync: [generator] something odd happened\n"
    out = settle(b, run(23, ["a.rrd", "b.rrd"], stderr), ROOT, {}, lambda p: SIG, 0.0)
    assert out.unattributed and out.requeue == b and out.dest_error
    single = settle(entries("a.rrd"), run(23, ["a.rrd"], stderr), ROOT, {}, lambda p: SIG, 0.0)
    assert [f.path for f in single.failed] == ["a.rrd"] and not single.unattributed


def test_vanished_and_missing_paths_are_done():
    b = entries("gone.rrd", "here.rrd")
    out = settle(b, run(24, ["here.rrd"], 'file has vanished: "/src/gone.rrd"\n'), ROOT,
                 {"here.rrd": SIG}, lambda p: SIG, 0.0)
    assert set(out.confirmed) == {"gone.rrd", "here.rrd"} and len(out.lags) == 1
