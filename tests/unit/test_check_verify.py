"""The decisions inside check and verify that need no server: what a version means, which
itemized lines are drift, when --delete is dropped, how a busy receiver is retried."""

from __future__ import annotations

import io

import pytest

from rrdsync import check as check_mod
from rrdsync.check import Report, Session, _version_line
from rrdsync.rsync_output import parse_item
from rrdsync.transfer import Result
from rrdsync.verify import NOT_CHECKED, compare

BUSY = "/usr/bin/rrsync error: Another instance of rrsync is already accessing this directory.\n"
NO_DEL = "/usr/bin/rrsync error: option --delete has been disabled on this server.\n"


def version_report(version: str | None, protocol: int | None) -> str:
    out = io.StringIO()
    _version_line(Report(out), version, protocol)
    return out.getvalue().strip()


@pytest.mark.parametrize(("version", "protocol", "line"), [
    ("3.2.7", None, "[ok  ] destination rsync version: 3.2.7"),
    ("3.1.3pre1", 31, "[ok  ] destination rsync version: 3.1.3pre1"),
    ("3.1.2", 31, "[warn] destination rsync version: 3.1.2: older than 3.1.3"),
    (None, 32, "[ok  ] destination rsync version: 3.2.0 or newer (protocol 32"),
    (None, 31, "[warn] destination rsync version: 3.1.x (protocol 31)"),
    (None, 30, "[warn] destination rsync version: protocol 30: older than 3.1"),
    (None, None, "[warn] destination rsync version: unknown"),
])
def test_version_line(version, protocol, line):
    assert version_report(version, protocol).startswith(line)


class FakeRsync:
    """Answers each run with the next prepared Result and records the argv."""

    def __init__(self, *results: Result) -> None:
        self.results = list(results)
        self.argvs: list[list[str]] = []

    def base_argv(self) -> list[str]:
        return ["rsync"]

    def filter_args(self) -> list[str]:
        return ["--exclude=/lost+found"]

    def source_arg(self) -> str:
        return "/src/"

    def target(self) -> str:
        return "h:/"

    def run(self, argv, stop, beat) -> Result:
        self.argvs.append(argv)
        return self.results.pop(0)


class FakeSession:
    def __init__(self, rsync: FakeRsync) -> None:
        self.rsync = rsync
        self.said: list[str] = []
        self.stop = self.beat = None

    def say(self, text: str) -> None:
        self.said.append(text)

    def run(self, attempt):
        return attempt()


def items(*lines: bytes):
    return [parse_item(b"rrdsync:" + line) for line in lines]


LISTED = items(b"<f+++++++++:0:snmp/1/new.rrd", b"<fcs.......:0:snmp/1/a\\#012b.rrd",
               b".f..t......:0:snmp/1/touched.rrd", b"cd+++++++++:0:snmp/2/",
               b"*deleting:0:snmp/9/old.rrd", b"*deleting:0:snmp/9/")


def test_drift_is_files_sent_and_files_deleted_only_when_extra_is_checked():
    """Content differences and missing files are drift; a time-only difference and a
    directory are not; files only at the destination count only with --delete."""
    s = FakeSession(FakeRsync(Result(0, 0, items=LISTED), Result(0, 0, items=LISTED)))
    found = compare(s, extra=False)  # type: ignore[arg-type]
    assert [i.raw_name for i in found.drift] == [b"snmp/1/new.rrd", b"snmp/1/a\\#012b.rrd"]
    assert "--delete" not in s.rsync.argvs[0] and found.error is None
    found = compare(s, extra=True)  # type: ignore[arg-type]
    assert [i.raw_name for i in found.drift] == [b"snmp/1/new.rrd", b"snmp/1/a\\#012b.rrd",
                                                 b"snmp/9/old.rrd"]
    assert "--delete" in s.rsync.argvs[1] and found.extra_checked


def test_refused_delete_is_dropped_with_a_warning_and_content_still_compared():
    s = FakeSession(FakeRsync(Result(12, 0, stderr=NO_DEL), Result(0, 0, items=LISTED)))
    found = compare(s, extra=True)  # type: ignore[arg-type]
    assert "--delete" in s.rsync.argvs[0] and "--delete" not in s.rsync.argvs[1]
    assert s.said == [f"warning: {NOT_CHECKED}"]
    assert len(found.drift) == 2 and not found.extra_checked and found.error is None


def test_a_failed_comparison_is_an_error_not_drift():
    s = FakeSession(FakeRsync(Result(255, 0, stderr="ssh: connection closed\n")))
    found = compare(s, extra=False)  # type: ignore[arg-type]
    assert found.drift == [] and "rsync exit 255" in (found.error or "")


def test_unreadable_paths_make_the_comparison_incomplete():
    err = 'rsync: [generator] recv_generator: failed to stat "/d/x.rrd": Permission denied (13)\n'
    s = FakeSession(FakeRsync(Result(23, 0, stderr=err, items=LISTED[:1])))
    found = compare(s, extra=False)  # type: ignore[arg-type]
    assert len(found.drift) == 1 and "1 path(s) could not be compared" in (found.error or "")


def test_busy_receiver_is_retried_then_given_up(monkeypatch):
    monkeypatch.setattr(check_mod, "BUSY_WAITS", (0.0, 0.0, 0.0))
    said: list[str] = []
    s = Session.__new__(Session)  # only the retry loop: no destination needed
    s.say = said.append
    answers = [Result(12, 0, stderr=BUSY), Result(12, 0, stderr=BUSY), Result(0, 0)]
    assert s.run(lambda: answers.pop(0)).exit_code == 0
    assert answers == [] and len(said) == 2 and "retry 1 of 3" in said[0]
    assert "busy" in said[0]
    attempts: list[Result] = []
    res = s.run(lambda: attempts.append(Result(12, 0, stderr=BUSY)) or attempts[-1])
    assert res.busy and len(attempts) == 4 and "retry 3 of 3" in said[-1]
