"""rsync command lines and exit classes (no rsync run here; integration tests run it)."""

from __future__ import annotations

from pathlib import Path

from rrdsync.config import load_sidecar
from rrdsync.transfer import Result, Rsync, compress_args


def make_rsync(tmp_path: Path, **env) -> Rsync:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    cfg = load_sidecar({"RRDSYNC_SOURCE_DIR": str(src), "RRDSYNC_DEST": str(tmp_path / "dst"),
                "RRDSYNC_STATE_DIR": str(tmp_path / "state"), **env})
    return Rsync(cfg, cfg.dests[0], None, tmp_path / "work")


def test_never_secluded_inplace_or_partial(tmp_path):
    r = make_rsync(tmp_path)
    argv = r.base_argv() + r.filter_args()
    for bad in ("-s", "--secluded-args", "--protect-args", "--inplace", "--partial",
                "--append", "--perms", "-p", "--copy-links", "-L"):
        assert bad not in argv


def test_directory_times_are_never_set(tmp_path):
    """A destination root owned by root with fsGroup (2775) refuses times on "."."""
    assert "--omit-dir-times" in make_rsync(tmp_path).base_argv()


def test_filters_exclude_wins_and_lost_found_is_never_entered(tmp_path):
    r = make_rsync(tmp_path, RRDSYNC_INCLUDE="*.rrd", RRDSYNC_EXCLUDE="tmp*")
    assert r.filter_args() == ["--exclude=/lost+found", "--include=*/", "--exclude=tmp*",
                               "--include=*.rrd", "--exclude=*"]


def test_bwlimit_and_timeout(tmp_path):
    argv = make_rsync(tmp_path, RRDSYNC_BWLIMIT="100", RRDSYNC_TIMEOUT="90s").base_argv()
    assert "--bwlimit=100" in argv and "--timeout=90" in argv


def test_compression_choices(tmp_path):
    def args(value: str) -> list[str]:
        return compress_args(make_rsync(tmp_path, RRDSYNC_COMPRESS=value).cfg)

    # negotiated, at the level measured fastest for the same bytes (config_parse.AUTO_LEVEL)
    assert args("true") == ["--compress", "--compress-level=1"]
    assert args("false") == []
    assert args("zstd:1") == ["--compress", "--compress-choice=zstd", "--compress-level=1"]
    assert args("lz4") == ["--compress", "--compress-choice=lz4"]


def test_exit_code_classes():
    assert Result(0, 0).result == "ok" and Result(24, 0).result == "ok"
    assert Result(23, 0).result == "partial"
    for code in (1, 5, 10, 11, 12, 30, 255):
        r = Result(code, 0, stderr="boom\n")
        assert r.result == "failed" and f"rsync exit {code}" in (r.error or "")
        assert "boom" in (r.error or "") and not r.completed
    assert Result(0, 0, interrupted=True).result == "failed"


def test_completed_runs_are_the_ones_that_confirm():
    """rsync lists a file on the sending side before the receiver commits it: only a run
    that went through (0, 23, 24) confirms what its errors do not name."""
    assert Result(0, 0).completed and Result(24, 0).completed and Result(23, 0).completed
    assert not Result(0, 0, interrupted=True).completed
    assert not Result(12, 0).completed and not Result(255, 0).completed


def test_refusal_by_rrsync_is_recognised():
    msg = "/usr/bin/rrsync error: invalid rsync-command syntax or options\n"
    assert Result(1, 0, stderr=msg).refused and Result(12, 0, stderr=msg).refused
    assert not Result(12, 0, stderr="connection closed\n").refused


def test_delete_refusal_by_rrsync_no_del_is_recognised():
    """rrsync -no-del names the option it refuses ("option --delete has been disabled on
    this server."), not the generic "invalid rsync-command" line."""
    msg = ("/usr/bin/rrsync error: option --delete has been disabled on this server.\n"
           "rsync: connection unexpectedly closed (0 bytes received so far) [sender]\n")
    assert Result(12, 0, stderr=msg).refused and not Result(12, 0, stderr=msg).busy


def test_busy_rrsync_receiver_is_recognised():
    msg = ("/usr/bin/rrsync error: Another instance of rrsync is already accessing this "
           "directory.\nrsync: connection unexpectedly closed (0 bytes received so far)\n")
    res = Result(12, 0, stderr=msg)
    assert res.busy and not res.refused and not res.completed
    assert not Result(12, 0, stderr="connection closed\n").busy
