"""Every configuration mistake is one line that names the variable, and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rrdsync import config
from rrdsync.config import ConfigError, load


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    src = tmp_path / "src"
    src.mkdir()
    key = tmp_path / "id"
    key.write_text("not really a key\n")
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    return {"RRDSYNC_SOURCE_DIR": str(src), "RRDSYNC_DEST": "u@host:/srv/rrd",
            "RRDSYNC_SSH_KEY": str(key), "RRDSYNC_KNOWN_HOSTS": str(kh)}


def test_defaults(env):
    cfg = load(env)
    assert cfg.settle == 0.1 and cfg.max_delay == 2.0 and cfg.batch_max == 5000
    assert cfg.include == ("*.rrd", "*.jrb", "*.meta", "*.properties")
    assert cfg.dest.host == "host" and cfg.dest.user == "u" and cfg.dest.path == "/srv/rrd"
    assert cfg.dest.rsync_target() == "u@host:/srv/rrd/"
    assert cfg.http_addr == ("0.0.0.0", 8080)
    assert cfg.rescan_interval == 3600 and cfg.max_lag == 300 and not cfg.delete


@pytest.mark.parametrize("raw,seconds", [("500ms", 0.5), ("1.5s", 1.5), ("5m", 300),
                                         ("1h", 3600), ("0.5", 0.5), ("2", 2), (".5s", 0.5)])
def test_durations(env, raw, seconds):
    assert load({**env, "RRDSYNC_TIMEOUT": raw}).timeout == seconds


@pytest.mark.parametrize("raw,value", [("true", True), ("1", True), ("YES", True),
                                       ("false", False), ("0", False), ("no", False)])
def test_booleans(env, raw, value):
    assert load({**env, "RRDSYNC_COMPRESS": raw}).compress is value


def test_local_destination(env):
    cfg = load({**env, "RRDSYNC_DEST": "/mnt/nfs/rrd"})
    assert not cfg.dest.is_remote and cfg.dest.rsync_target() == "/mnt/nfs/rrd/"


def test_zero_turns_off_where_allowed(env):
    cfg = load({**env, "RRDSYNC_RESCAN_INTERVAL": "0", "RRDSYNC_SETTLE": "0"})
    assert cfg.rescan_interval == 0 and cfg.settle == 0


BAD = [
    ("RRDSYNC_SETTLE", "1m30s"), ("RRDSYNC_SETTLE", "fast"), ("RRDSYNC_MAX_DELAY", "-1s"),
    ("RRDSYNC_TIMEOUT", "0"), ("RRDSYNC_POLL_INTERVAL", "0s"), ("RRDSYNC_LIVENESS_TIMEOUT", "0"),
    ("RRDSYNC_MAX_LAG", "5 m"), ("RRDSYNC_RESCAN_INTERVAL", "1d"),
    ("RRDSYNC_DELETE", "maybe"), ("RRDSYNC_COMPRESS", "on"),
    ("RRDSYNC_BATCH_MAX", "0"), ("RRDSYNC_BATCH_MAX", "many"), ("RRDSYNC_BWLIMIT", "-5"),
    ("RRDSYNC_SSH_PORT", "70000"), ("RRDSYNC_SSH_PORT", "ssh"),
    ("RRDSYNC_SSH_HOST_KEY_POLICY", "no"), ("RRDSYNC_WATCH", "fanotify"),
    ("RRDSYNC_HTTP_ADDR", "8080"), ("RRDSYNC_HTTP_ADDR", "0.0.0.0:http"),
    ("RRDSYNC_LOG_LEVEL", "verbose"), ("RRDSYNC_LOG_FORMAT", "xml"),
    ("RRDSYNC_DEST", "host:relative/path"), ("RRDSYNC_DEST", "relative"),
    ("RRDSYNC_DEST", "-oProxyCommand=x:/p"), ("RRDSYNC_DEST", ""),
    ("RRDSYNC_SOURCE_DIR", "data"), ("RRDSYNC_STATE_DIR", "state"), ("RRDSYNC_RUN_DIR", "run"),
    ("RRDSYNC_INCLUDE", ","), ("RRDSYNC_INCLUDE", "snmp/*.rrd"),
    ("RRDSYNC_RRDCACHED", "tcp"), ("RRDSYNC_RRDCACHED", "unix:relative"),
    ("RRDSYNC_RRDCACHED_ROOT", "opt"), ("RRDSYNC_LISTEN_PORT", "0"),
    ("RRDSYNC_RECEIVER_ALLOW_DELETE", "sure"), ("RRDSYNC_SETTLE", "5s"),
    ("RRDSYNC_SOURCE", "/data"),  # a misspelt name
]


@pytest.mark.parametrize("name,value", BAD)
def test_bad_values_name_the_variable(env, name, value):
    with pytest.raises(ConfigError) as e:
        load({**env, name: value})
    assert e.value.name == name
    assert name in str(e.value) and "\n" not in str(e.value)


def test_missing_destination(env):
    del env["RRDSYNC_DEST"]
    with pytest.raises(ConfigError, match="RRDSYNC_DEST"):
        load(env)


def test_missing_paths_are_config_errors(env, tmp_path):
    for name, value in [("RRDSYNC_SOURCE_DIR", str(tmp_path / "nope")),
                        ("RRDSYNC_SSH_KEY", str(tmp_path / "nokey")),
                        ("RRDSYNC_KNOWN_HOSTS", str(tmp_path / "nokh"))]:
        with pytest.raises(ConfigError) as e:
            load({**env, name: value})
        assert e.value.name == name


def test_accept_new_needs_no_known_hosts(env, tmp_path):
    cfg = load({**env, "RRDSYNC_KNOWN_HOSTS": str(tmp_path / "nokh"),
                "RRDSYNC_SSH_HOST_KEY_POLICY": "accept-new"})
    assert cfg.ssh_host_key_policy == "accept-new"


def test_service_links_are_ignored_with_a_warning(env):
    cfg = load({**env, "RRDSYNC_RECEIVER_SERVICE_HOST": "10.0.0.1",
                "RRDSYNC_RECEIVER_SERVICE_PORT_SSH": "2222",
                "RRDSYNC_RECEIVER_PORT_2222_TCP_ADDR": "10.0.0.1",
                "RRDSYNC_SSH_PORT": "tcp://10.0.0.1:22"})
    assert cfg.ssh_port == 22
    assert len(cfg.warnings) == 4


def test_receiver_role_needs_no_destination():
    cfg = load({"RRDSYNC_LISTEN_PORT": "2022"}, role="receiver")
    assert cfg.listen_port == 2022


def test_exclude_wins_over_include(env):
    cfg = load({**env, "RRDSYNC_EXCLUDE": "tmp*"})
    assert cfg.included("a.rrd") and not cfg.included("tmp.rrd") and not cfg.included("a.txt")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    return subprocess.run([sys.executable, "-m", "rrdsync", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("command", ["run", "once", "check", "verify", "config"])
def test_cli_config_error_is_one_line_exit_2(env, command):
    r = _cli({**env, "RRDSYNC_MAX_DELAY": "soon"}, command)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "RRDSYNC_MAX_DELAY" in lines[0] and "'soon'" in lines[0]
    assert r.stdout == ""


def test_cli_config_prints_effective_configuration(env):
    r = _cli(env, "config")
    assert r.returncode == 0, r.stderr
    out = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert out["RRDSYNC_DEST"] == "u@host:/srv/rrd"
    assert out["RRDSYNC_SETTLE"] == "0.1"
    assert out["RRDSYNC_SSH_KEY"] == env["RRDSYNC_SSH_KEY"]  # a path, never the key
    assert "not really a key" not in r.stdout + r.stderr
    assert set(out) >= {config.PREFIX + k for k in config.KNOWN}
