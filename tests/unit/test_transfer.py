"""rsync command lines and output parsing (no rsync run here; integration tests run it)."""

from __future__ import annotations

from pathlib import Path

from rrdsync.config import load_sidecar
from rrdsync.transfer import Result, Rsync, unescape


def make_rsync(tmp_path: Path, **env) -> Rsync:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    cfg = load_sidecar({"RRDSYNC_SOURCE_DIR": str(src), "RRDSYNC_DEST": str(tmp_path / "dst"),
                        **env}, require_paths=False)
    return Rsync(cfg, None, tick=lambda: None, abort=lambda: False)


def test_never_secluded_inplace_or_partial(tmp_path):
    r = make_rsync(tmp_path)
    argv = r.base_argv() + r.filter_args()
    for bad in ("-s", "--secluded-args", "--protect-args", "--inplace", "--partial",
                "--append"):
        assert bad not in argv


def test_filters_exclude_wins(tmp_path):
    r = make_rsync(tmp_path, RRDSYNC_INCLUDE="*.rrd", RRDSYNC_EXCLUDE="tmp*")
    assert r.filter_args() == ["--include=*/", "--exclude=tmp*", "--include=*.rrd",
                               "--exclude=*"]


def test_bwlimit_and_timeout(tmp_path):
    argv = make_rsync(tmp_path, RRDSYNC_BWLIMIT="100", RRDSYNC_TIMEOUT="90s").base_argv()
    assert "--bwlimit=100" in argv and "--timeout=90" in argv


def test_unescape():
    assert unescape(b"a\\#012b") == b"a\nb"
    assert unescape(b"caf\\#303\\#251") == "café".encode()


def test_parse_itemized_lines():
    res = Result(exit_code=0, duration=0)
    Rsync._parse(b"rrdsync:<f.st......:1234:snmp/1/a.rrd", res, None)
    Rsync._parse(b"rrdsync:cd+++++++++:0:snmp/1/", res, None)
    Rsync._parse(b"rrdsync:*deleting:0:snmp/1/old.rrd", res, None)
    Rsync._parse(b"rrdsync:<f+++++++++:10:odd:name\\#012.rrd", res, None)
    assert res.sent == ["snmp/1/a.rrd", "odd:name\n.rrd"]
    assert res.deleted == ["snmp/1/old.rrd"] and res.nbytes == 1244


def test_progress_lines():
    seen = []
    res = Result(exit_code=0, duration=0)
    Rsync._parse(b"  1,234  45%  1.00MB/s  0:00:01 (xfr#12, to-chk=88/100)", res,
                 lambda *a: seen.append(a))
    assert seen == [(12, 12, 100)]


def test_exit_code_classes():
    assert Result(0, 0).result == "ok" and Result(24, 0).result == "ok"
    assert Result(23, 0).result == "partial"
    for code in (1, 5, 10, 11, 12, 30, 255):
        r = Result(code, 0, stderr="boom\n")
        assert r.result == "failed" and f"rsync exit {code}" in r.error and "boom" in r.error


def test_sent_is_confirmed_only_by_a_clean_run_or_sender_side_errors():
    """rsync lists a file on the sending side before the receiver commits it."""
    assert Result(0, 0).sent_confirmed and Result(24, 0).sent_confirmed
    assert not Result(0, 0, interrupted=True).sent_confirmed
    assert not Result(12, 0).sent_confirmed and not Result(255, 0).sent_confirmed
    receiver = Result(23, 0, stderr='rsync: [receiver] mkstemp "x" failed: Read-only\n')
    assert not receiver.sent_confirmed
    sender = Result(23, 0, stderr='rsync: [sender] send_files failed to open "x": Permission '
                                  'denied (13)\n')
    assert sender.sent_confirmed
    assert not Result(23, 0, stderr=sender.stderr, stderr_cut=True).sent_confirmed


class _StubSsh:
    def rsh(self) -> str:
        return "ssh -F /dev/null"


def test_compress_choice_and_level(tmp_path):
    src = tmp_path / "src"
    src.mkdir()

    def argv(value: str) -> list[str]:
        cfg = load_sidecar({"RRDSYNC_SOURCE_DIR": str(src), "RRDSYNC_DEST": "h:/d",
                            "RRDSYNC_COMPRESS": value}, require_paths=False)
        rsync = Rsync(cfg, _StubSsh(), tick=lambda: None, abort=lambda: False)  # type: ignore[arg-type]
        return [a for a in rsync.base_argv() if a.startswith("--compress")]

    assert argv("true") == ["--compress"]
    assert argv("false") == []
    assert argv("lz4") == ["--compress", "--compress-choice=lz4"]
    assert argv("zstd:-5") == ["--compress", "--compress-choice=zstd", "--compress-level=-5"]
