"""Every configuration mistake is one line that names the variable, and exit status 2."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

from rrdsync import cli, config, config_parse, config_table
from rrdsync.config import (
    ConfigError,
    load_receiver,
    load_serve,
    load_sidecar,
    public_items,
)
from tests.fixtures.sshd import ensure_user


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    src = tmp_path / "src"
    src.mkdir()
    key = tmp_path / "id"
    key.write_text("not really a key\n")
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    return {"RRDSYNC_SOURCE_DIR": str(src), "RRDSYNC_DEST": "u@host:/srv/rrd",
            "RRDSYNC_SSH_KEY": str(key), "RRDSYNC_KNOWN_HOSTS": str(kh),
            "RRDSYNC_STATE_DIR": str(tmp_path / "state"), "RRDSYNC_RUN_DIR": str(tmp_path / "run")}


def load_for(name: str, env: dict[str, str]):
    """Load the first role that validates ``name``."""
    role = config_table.BY_NAME[name].roles[0]
    return config.LOADERS[role](env)


def test_defaults(env):
    cfg = load_sidecar(env)
    assert cfg.settle == 0.1 and cfg.max_delay == 2.0 and cfg.batch_max == 5000
    assert cfg.include == ("*.rrd", "*.jrb", "*.meta", "*.properties") and cfg.exclude == ()
    (dest,) = cfg.dests
    assert (dest.host, dest.user, dest.path, dest.port) == ("host", "u", "/srv/rrd", 22)
    assert dest.rsync_target() == "u@host:/srv/rrd/"
    assert cfg.http_addr == ("0.0.0.0", 8080)
    assert cfg.rescan_interval == 3600 and cfg.max_lag == 300 and not cfg.delete
    assert (cfg.compress, cfg.compress_level, cfg.timeout, cfg.bwlimit) == ("auto", 1, 60, 0)
    assert cfg.rrdcached_root is None and cfg.rrdcached_path_root == cfg.source_dir


def test_dataclass_defaults_are_the_documented_ones():
    """The dataclasses take their defaults from the table's README text."""
    assert config.ServeConfig().max_lag == 300 and config.ServeConfig().http_addr[1] == 8080
    assert config.ReceiverConfig().listen_port == 2222
    cfg = config.SidecarConfig(dests=(config.Destination(path="/x"),))
    assert cfg.settle == 0.1 and cfg.compress == "auto"
    with pytest.raises(ValueError):
        config.SidecarConfig(dests=())


@pytest.mark.parametrize("raw,seconds", [("500ms", 0.5), ("1.5s", 1.5), ("5m", 300),
                                         ("1h", 3600), ("0.5", 0.5), ("2", 2), (".5s", 0.5),
                                         ("576h", 576 * 3600)])
def test_durations(env, raw, seconds):
    assert load_sidecar({**env, "RRDSYNC_POLL_INTERVAL": raw}).poll_interval == seconds


@pytest.mark.parametrize("raw,value", [("true", True), ("1", True), ("YES", True),
                                       ("false", False), ("0", False), ("no", False)])
def test_booleans(env, raw, value):
    assert load_sidecar({**env, "RRDSYNC_DELETE": raw}).delete is value


# Where DESIGN allows 0: SETTLE (at once), RESCAN_INTERVAL (off), BWLIMIT (unlimited); the
# booleans, where "0" is false; and the globs, where "0" is a file name. Elsewhere: error.
ZERO_OK = {"RRDSYNC_INCLUDE": ("include", ("0",)), "RRDSYNC_EXCLUDE": ("exclude", ("0",)),
           "RRDSYNC_SETTLE": ("settle", 0), "RRDSYNC_RESCAN_INTERVAL": ("rescan_interval", 0),
           "RRDSYNC_BWLIMIT": ("bwlimit", 0), "RRDSYNC_DELETE": ("delete", False),
           "RRDSYNC_RECEIVER_ALLOW_DELETE": ("receiver_allow_delete", False),
           "RRDSYNC_COMPRESS": ("compress", "none")}


@pytest.mark.parametrize("name", sorted(config.NAMES))
def test_zero_only_where_design_allows_it(env, name):
    if name in ZERO_OK:
        field, value = ZERO_OK[name]
        assert getattr(load_for(name, {**env, name: "0"}), field) == value
    else:
        with pytest.raises(ConfigError) as e:
            load_for(name, {**env, name: "0"})
        assert e.value.name == name


BAD = [
    ("RRDSYNC_SETTLE", "1m30s"), ("RRDSYNC_SETTLE", "fast"), ("RRDSYNC_MAX_DELAY", "-1s"),
    ("RRDSYNC_MAX_DELAY", "0"), ("RRDSYNC_MAX_DELAY", "0ms"),
    ("RRDSYNC_TIMEOUT", "0"), ("RRDSYNC_POLL_INTERVAL", "0s"), ("RRDSYNC_LIVENESS_TIMEOUT", "0"),
    ("RRDSYNC_MAX_LAG", "5 m"), ("RRDSYNC_RESCAN_INTERVAL", "1d"),
    ("RRDSYNC_RESCAN_INTERVAL", "577h"), ("RRDSYNC_MAX_LAG", "9" * 400 + "h"),
    ("RRDSYNC_DELETE", "maybe"), ("RRDSYNC_COMPRESS", "on"),
    ("RRDSYNC_BATCH_MAX", "0"), ("RRDSYNC_BATCH_MAX", "many"), ("RRDSYNC_BATCH_MAX", "+5"),
    ("RRDSYNC_BATCH_MAX", "1000001"), ("RRDSYNC_BWLIMIT", "-5"), ("RRDSYNC_BWLIMIT", "1.5"),
    ("RRDSYNC_BWLIMIT", "10m"),
    ("RRDSYNC_SSH_PORT", "70000"), ("RRDSYNC_SSH_PORT", "ssh"), ("RRDSYNC_SSH_PORT", "0"),
    ("RRDSYNC_SSH_HOST_KEY_POLICY", "no"), ("RRDSYNC_WATCH", "fanotify"),
    ("RRDSYNC_HTTP_ADDR", "8080"), ("RRDSYNC_HTTP_ADDR", "0.0.0.0:http"),
    ("RRDSYNC_HTTP_ADDR", "0.0.0.0:0"), ("RRDSYNC_HTTP_ADDR", ":::8080"),
    ("RRDSYNC_LOG_LEVEL", "verbose"), ("RRDSYNC_LOG_FORMAT", "xml"),
    ("RRDSYNC_SOURCE_DIR", "data"), ("RRDSYNC_STATE_DIR", "state"), ("RRDSYNC_RUN_DIR", "run"),
    ("RRDSYNC_SSH_KEY", "id"), ("RRDSYNC_KNOWN_HOSTS", "~/.ssh/known_hosts"),
    ("RRDSYNC_INCLUDE", ","), ("RRDSYNC_INCLUDE", ""), ("RRDSYNC_INCLUDE", "snmp/*.rrd"),
    ("RRDSYNC_EXCLUDE", "a/b"),
    ("RRDSYNC_RRDCACHED", "tcp"), ("RRDSYNC_RRDCACHED", "unix:relative"),
    ("RRDSYNC_RRDCACHED", "host:0"), ("RRDSYNC_RRDCACHED", "fd00::5:42217"),
    ("RRDSYNC_RRDCACHED", ":42217"), ("RRDSYNC_RRDCACHED_ROOT", "opt"),
    ("RRDSYNC_LISTEN_PORT", "0"), ("RRDSYNC_LISTEN_PORT", "65536"),
    ("RRDSYNC_RECEIVE_DIR", "data"), ("RRDSYNC_AUTHORIZED_KEYS", "keys"),
    ("RRDSYNC_HOST_KEY_DIR", "keys"),
    ("RRDSYNC_RECEIVER_ALLOW_DELETE", "sure"), ("RRDSYNC_SETTLE", "5s"),
    ("RRDSYNC_SOURCE", "/data"),  # a misspelt name
    ("RRDSYNC_PORT", "8080"),  # RRDSYNC_PORT without tcp:// is no service link: unknown
    # no traceback for what int() or float() would choke on
    ("RRDSYNC_BATCH_MAX", "9" * 5000), ("RRDSYNC_RRDCACHED", "h:" + "9" * 5000),
    ("RRDSYNC_RRDCACHED", "h:\u00b2"), ("RRDSYNC_SETTLE", "\u0663s"),
    ("RRDSYNC_MAX_LAG", "9" * 5000), ("RRDSYNC_SOURCE_DIR", "x\ny"),
]


@pytest.mark.parametrize("name,value", BAD)
def test_bad_values_name_the_variable(env, name, value):
    with pytest.raises(ConfigError) as e:
        load_for(name, {**env, name: value}) if name in config.NAMES \
            else load_sidecar({**env, name: value})
    assert e.value.name == name
    assert name in str(e.value) and "\n" not in str(e.value)


def test_unknown_name_suggests_the_known_one(env):
    with pytest.raises(ConfigError, match="did you mean RRDSYNC_SOURCE_DIR"):
        load_sidecar({**env, "RRDSYNC_SOURCE_DIRS": "/data"})


# --- rsync's own bounds (found by running rsync 3.5.0, see config_parse.py) ---------------


@pytest.mark.parametrize("raw,ok", [("0", True), ("1", True), ("2147483647", True),
                                    ("2147483648", False), ("4294967296", False)])
def test_bwlimit_bounds(env, raw, ok):
    """rsync forwards --bwlimit to the other end as a C int: 2147483648 arrives as
    -2147483648 (refused there), 4294967296 as 0 (silently unlimited)."""
    if ok:
        assert load_sidecar({**env, "RRDSYNC_BWLIMIT": raw}).bwlimit == int(raw)
    else:
        with pytest.raises(ConfigError, match="RRDSYNC_BWLIMIT"):
            load_sidecar({**env, "RRDSYNC_BWLIMIT": raw})


@pytest.mark.parametrize("raw,ok", [("1", True), ("1s", True), ("90s", True), ("2m", True),
                                    ("576h", True), ("1000ms", True), ("500ms", False),
                                    ("1.5s", False), ("0.5", False), ("0", False),
                                    ("577h", False)])
def test_timeout_is_whole_seconds_rsync_accepts(env, raw, ok):
    """rsync --timeout takes whole seconds (1.5 is "invalid numeric value") and 0 turns
    the timeout off; rrdsync's own waits need it under 2^31 ms."""
    if ok:
        assert load_sidecar({**env, "RRDSYNC_TIMEOUT": raw}).timeout >= 1
    else:
        with pytest.raises(ConfigError, match="RRDSYNC_TIMEOUT"):
            load_sidecar({**env, "RRDSYNC_TIMEOUT": raw})


@pytest.mark.parametrize("raw,compress,level", [
    ("true", "auto", 1), ("YES", "auto", 1), ("1", "auto", 1),
    ("false", "none", None), ("no", "none", None), ("0", "none", None),
    ("zstd", "zstd", None), ("zstd:3", "zstd", 3), ("ZSTD:22", "zstd", 22),
    ("zstd:-5", "zstd", -5), ("zstd:-131071", "zstd", -131071), ("lz4", "lz4", None),
    ("zlibx", "zlibx", None), ("zlibx:9", "zlibx", 9), ("zlib:1", "zlib", 1)])
def test_compress_choices(env, raw, compress, level):
    cfg = load_sidecar({**env, "RRDSYNC_COMPRESS": raw})
    assert (cfg.compress, cfg.compress_level) == (compress, level)


@pytest.mark.parametrize("raw", ["on", "gzip", "none", "zstd:", "zstd:0", "zstd:23",
                                 "zstd:-131072", "zstd:3.5", "zstd:x", "lz4:1", "zlib:0",
                                 "zlib:10", "zlibx:-1", "zstd:3:4", ":3"])
def test_compress_levels_rsync_would_clamp_are_refused(env, raw):
    with pytest.raises(ConfigError) as e:
        load_sidecar({**env, "RRDSYNC_COMPRESS": raw})
    assert e.value.name == "RRDSYNC_COMPRESS" and "zstd" in e.value.accepted


# --- roles ------------------------------------------------------------------------------


def test_each_role_validates_only_its_own():
    cfg = load_receiver({"RRDSYNC_LISTEN_PORT": "2022", "RRDSYNC_SETTLE": "fast"})
    assert cfg.listen_port == 2022
    assert load_serve({"RRDSYNC_DEST": "", "RRDSYNC_MAX_LAG": "1m"}).max_lag == 60
    with pytest.raises(ConfigError, match="RRDSYNC_MAX_LAG"):
        load_serve({"RRDSYNC_MAX_LAG": "0"})


def test_missing_destination(env):
    del env["RRDSYNC_DEST"]
    with pytest.raises(ConfigError) as e:
        load_sidecar(env)
    assert e.value.name == "RRDSYNC_DEST" and "(unset)" in str(e.value)


def test_settle_must_not_exceed_max_delay(env):
    with pytest.raises(ConfigError, match=r"RRDSYNC_SETTLE='3s'.*RRDSYNC_MAX_DELAY"):
        load_sidecar({**env, "RRDSYNC_SETTLE": "3s", "RRDSYNC_MAX_DELAY": "2s"})
    assert load_sidecar({**env, "RRDSYNC_SETTLE": "2s"}).settle == 2


def test_exclude_wins_over_include(env):
    cfg = load_sidecar({**env, "RRDSYNC_EXCLUDE": "tmp*"})
    assert cfg.included("a.rrd") and not cfg.included("tmp.rrd") and not cfg.included("a.txt")


# --- Kubernetes service links -----------------------------------------------------------

SERVICE_LINKS = [
    # a Service named exactly "rrdsync" (the chart's own, release "rrdsync"), port "http"
    ("RRDSYNC_SERVICE_HOST", "10.0.0.1"), ("RRDSYNC_SERVICE_PORT", "8080"),
    ("RRDSYNC_SERVICE_PORT_HTTP", "8080"), ("RRDSYNC_PORT", "tcp://10.0.0.1:8080"),
    ("RRDSYNC_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
    ("RRDSYNC_PORT_8080_TCP_PROTO", "tcp"), ("RRDSYNC_PORT_8080_TCP_PORT", "8080"),
    ("RRDSYNC_PORT_8080_TCP_ADDR", "10.0.0.1"),
    # a Service "rrdsync-receiver"
    ("RRDSYNC_RECEIVER_SERVICE_HOST", "10.0.0.2"), ("RRDSYNC_RECEIVER_SERVICE_PORT_SSH", "2222"),
    ("RRDSYNC_RECEIVER_PORT", "tcp://10.0.0.2:2222"),
    ("RRDSYNC_RECEIVER_PORT_2222_TCP_ADDR", "10.0.0.2"),
    ("RRDSYNC_METRICS_PORT_9_UDP", "udp://10.0.0.3:9"),
    ("RRDSYNC_X_PORT_38412_SCTP_PROTO", "sctp"),
    # a Service "rrdsync-ssh" / "rrdsync-listen": these look exactly like our settings
    ("RRDSYNC_SSH_PORT", "tcp://10.0.0.1:22"), ("RRDSYNC_LISTEN_PORT", "TCP://10.0.0.4:2222"),
    ("RRDSYNC_SSH_SERVICE_HOST", "10.0.0.1"), ("RRDSYNC_SSH_PORT_22_TCP", "tcp://10.0.0.1:22"),
]


@pytest.mark.parametrize("name,value", SERVICE_LINKS)
@pytest.mark.parametrize("role", config.ROLES)
def test_service_link_ignored_with_one_warning(env, role, name, value):
    cfg = config.LOADERS[role]({**env, name: value})
    assert len(cfg.warnings) == 1 and name in cfg.warnings[0]
    if role == "sidecar":
        assert cfg.ssh_port == 22
    if role == "receiver":
        assert cfg.listen_port == 2222


def test_no_setting_looks_like_a_service_link():
    for name in config.NAMES:
        assert not config_parse.is_service_link(name, "42")


def test_all_service_links_at_once(env):
    cfg = load_sidecar({**env, **dict(SERVICE_LINKS)})
    assert len(cfg.warnings) == len(SERVICE_LINKS) and cfg.ssh_port == 22
    assert cfg.dests[0].port == 22


# --- the table ----------------------------------------------------------------------------


def test_every_row_is_complete():
    for var in config.TABLE:
        assert var.name.startswith("RRDSYNC_") and var.meaning and var.roles
        assert set(var.roles) <= set(config.ROLES)
        assert var.default is not None or var.required or var.shown
    assert len(config.NAMES) == len(config.TABLE)


@pytest.mark.parametrize("role", config.ROLES)
def test_public_items_cover_the_role_and_read_back(env, role):
    cfg = config.LOADERS[role]({**env, "RRDSYNC_DEST": "u@h:/a, ssh://[fd00::5]:2/b,/c",
                                "RRDSYNC_COMPRESS": "zstd:-3", "RRDSYNC_SETTLE": "250ms",
                                "RRDSYNC_HTTP_ADDR": "[::]:9000", "RRDSYNC_EXCLUDE": "x*,y*"})
    items = public_items(cfg)
    assert [n for n, _ in items] == [v.name for v in config_table.rows(role)]
    again = config.LOADERS[role](dict(items))
    assert public_items(again) == items
    if role == "sidecar":
        assert again.dests == cfg.dests and again.settle == 0.25


def test_secret_values_are_redacted(env, monkeypatch):
    rows = tuple(dataclasses.replace(v, secret=True) if v.name == "RRDSYNC_SSH_KEY" else v
                 for v in config_table.TABLE)
    monkeypatch.setattr(config_table, "TABLE", rows)
    items = dict(public_items(load_sidecar(env)))
    assert items["RRDSYNC_SSH_KEY"] == config_table.REDACTED
    assert items["RRDSYNC_KNOWN_HOSTS"] == env["RRDSYNC_KNOWN_HOSTS"]


# --- start-up checks without connecting ------------------------------------------------


def test_missing_paths_are_config_errors(env, tmp_path):
    for name, value in [("RRDSYNC_SOURCE_DIR", str(tmp_path / "nope")),
                        ("RRDSYNC_SOURCE_DIR", env["RRDSYNC_SSH_KEY"]),  # a file
                        ("RRDSYNC_SSH_KEY", str(tmp_path / "nokey")),
                        ("RRDSYNC_SSH_KEY", str(tmp_path)),  # a directory
                        ("RRDSYNC_KNOWN_HOSTS", str(tmp_path / "nokh"))]:
        with pytest.raises(ConfigError) as e:
            load_sidecar({**env, name: value})
        assert e.value.name == name


def test_paths_unchecked_when_not_required(env, tmp_path):
    cfg = load_sidecar({**env, "RRDSYNC_SOURCE_DIR": str(tmp_path / "nope")},
                       require_paths=False)
    assert cfg.source_dir == tmp_path / "nope"


def test_known_hosts_only_needed_with_strict_policy(env, tmp_path):
    cfg = load_sidecar({**env, "RRDSYNC_KNOWN_HOSTS": str(tmp_path / "nokh"),
                        "RRDSYNC_SSH_HOST_KEY_POLICY": "accept-new"})
    assert cfg.ssh_host_key_policy == "accept-new"


def test_local_destinations_need_no_key(env, tmp_path):
    cfg = load_sidecar({**env, "RRDSYNC_DEST": f"{tmp_path}/d1,{tmp_path}/d2",
                        "RRDSYNC_SSH_KEY": str(tmp_path / "nokey"),
                        "RRDSYNC_KNOWN_HOSTS": str(tmp_path / "nokh")})
    assert [d.is_remote for d in cfg.dests] == [False, False]


def test_state_dir_must_be_creatable(env, tmp_path):
    deep = tmp_path / "a" / "b" / "state"
    assert load_sidecar({**env, "RRDSYNC_STATE_DIR": str(deep)}).state_dir == deep
    assert not (tmp_path / "a").exists()  # checked, not created
    blocker = tmp_path / "file"
    blocker.write_text("")
    for bad in (blocker, blocker / "state"):
        with pytest.raises(ConfigError) as e:
            load_sidecar({**env, "RRDSYNC_STATE_DIR": str(bad)})
        assert e.value.name == "RRDSYNC_STATE_DIR"


def test_rrdcached_socket_must_exist(env, tmp_path):
    with pytest.raises(ConfigError, match=r"RRDSYNC_RRDCACHED.*does not exist"):
        load_sidecar({**env, "RRDSYNC_RRDCACHED": f"unix:{tmp_path}/nosock"})
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(ConfigError, match="not a unix socket"):
        load_sidecar({**env, "RRDSYNC_RRDCACHED": f"unix:{plain}"})
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "sock"))
        cfg = load_sidecar({**env, "RRDSYNC_RRDCACHED": f"unix:{tmp_path}/sock"})
    assert cfg.rrdcached == f"unix:{tmp_path}/sock"
    # host:port is only reachable by connecting: not checked at start
    assert load_sidecar({**env, "RRDSYNC_RRDCACHED": "localhost:1"}).rrdcached
    assert load_sidecar({**env, "RRDSYNC_RRDCACHED": "[fd00::5]:42217"}).rrdcached


# --- through the real command line --------------------------------------------------------


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    return subprocess.run([sys.executable, "-m", "rrdsync", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=30)


def _one_line_exit_2(r: subprocess.CompletedProcess, *expected: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("rrdsync: configuration error: ")
    for text in expected:
        assert text in lines[0]
    assert r.stdout == ""


CLI_ERRORS = [
    ({"RRDSYNC_MAX_DELAY": "soon"}, ("RRDSYNC_MAX_DELAY", "'soon'")),
    ({"RRDSYNC_MAX_DELAY": "0"}, ("RRDSYNC_MAX_DELAY",)),
    ({"RRDSYNC_DEST": "a:/x,,b:/y"}, ("RRDSYNC_DEST", "entry 2 ''")),
    ({"RRDSYNC_DEST": "u@h:/x,v@h:/x/"}, ("RRDSYNC_DEST", "entry 2 'v@h:/x/'")),
    ({"RRDSYNC_BWLIMIT": "2147483648"}, ("RRDSYNC_BWLIMIT",)),
    ({"RRDSYNC_COMPRESS": "zlib:0"}, ("RRDSYNC_COMPRESS",)),
    ({"RRDSYNC_TIMEOUT": "1.5s"}, ("RRDSYNC_TIMEOUT",)),
    ({"RRDSYNC_SOURCE_DIR": "/nonexistent/src"}, ("RRDSYNC_SOURCE_DIR",)),
    ({"RRDSYNC_STATE_DIR": "/proc/version/state"}, ("RRDSYNC_STATE_DIR",)),
    ({"RRDSYNC_RRDCACHED": "unix:/nonexistent.sock"}, ("RRDSYNC_RRDCACHED",)),
    ({"RRDSYNC_SOURCE": "/data"}, ("RRDSYNC_SOURCE",)),
]


@pytest.mark.parametrize("command", ["run", "once", "check", "verify", "config"])
@pytest.mark.parametrize("bad,expected", CLI_ERRORS)
def test_cli_config_error_is_one_line_exit_2(env, command, bad, expected):
    _one_line_exit_2(_cli({**env, **bad}, command), *expected)


def test_cli_missing_key_and_known_hosts(env, tmp_path):
    _one_line_exit_2(_cli({**env, "RRDSYNC_SSH_KEY": str(tmp_path / "x")}, "run"),
                     "RRDSYNC_SSH_KEY")
    _one_line_exit_2(_cli({**env, "RRDSYNC_KNOWN_HOSTS": str(tmp_path / "x")}, "run"),
                     "RRDSYNC_KNOWN_HOSTS", "accept-new")


@pytest.fixture
def other_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user")
    return ensure_user()


def _cli_as(user, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``rrdsync ARGS`` as another user, in a forked child: this interpreter may live where
    that user cannot execute it (/root), but the checks are the real os.access calls."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # child: never returns into pytest
            rc = 70
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
                os.environ.clear()
                os.environ.update(env)
                rc = cli.main(list(args))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(rc)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(status),
                                           out.read().decode(), err.read().decode())


def test_cli_unreadable_source_and_unwritable_state_as_another_user(world_dir, other_user):
    """As root every path is readable and writable; as an unprivileged user (the image's
    case) an unreadable source or a state dir it cannot create is exit 2, one line."""
    src, key, kh = world_dir / "src", world_dir / "id", world_dir / "known_hosts"
    src.mkdir(mode=0o700)  # root's own
    key.write_text("k")
    kh.write_text("")
    os.chmod(kh, 0o644)
    env = {"RRDSYNC_SOURCE_DIR": str(src), "RRDSYNC_DEST": "u@host:/srv/rrd",
           "RRDSYNC_SSH_KEY": str(key), "RRDSYNC_KNOWN_HOSTS": str(kh),
           "RRDSYNC_STATE_DIR": str(world_dir / "state")}
    _one_line_exit_2(_cli_as(other_user, env, "config"), "RRDSYNC_SOURCE_DIR", "readable")
    os.chmod(src, 0o755)
    (world_dir / "rootonly").mkdir(mode=0o755)
    state = {**env, "RRDSYNC_STATE_DIR": str(world_dir / "rootonly" / "state")}
    _one_line_exit_2(_cli_as(other_user, state, "run"), "RRDSYNC_STATE_DIR", "can write")
    os.chmod(key, 0o600)  # root's own
    _one_line_exit_2(_cli_as(other_user, env, "check"), "RRDSYNC_SSH_KEY")
    os.chmod(key, 0o644)
    (world_dir / "state").mkdir()
    os.chown(world_dir / "state", other_user.pw_uid, other_user.pw_gid)
    r = _cli_as(other_user, env, "config")
    assert r.returncode == 0, r.stderr
    assert f"RRDSYNC_STATE_DIR={world_dir / 'state'}" in r.stdout.splitlines()


def test_cli_config_prints_effective_configuration(env):
    r = _cli({**env, "RRDSYNC_DEST": "u@host:/srv/rrd, ssh://[fd00::5]:2222/srv"}, "config")
    assert r.returncode == 0, r.stderr
    out = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert out["RRDSYNC_DEST"] == "u@host:/srv/rrd,ssh://[fd00::5]:2222/srv"
    assert out["RRDSYNC_SETTLE"] == "100ms" and out["RRDSYNC_TIMEOUT"] == "1m"
    assert out["RRDSYNC_SSH_KEY"] == env["RRDSYNC_SSH_KEY"]  # a path, never the key
    assert "not really a key" not in r.stdout + r.stderr
    assert set(out) == {v.name for v in config_table.rows("sidecar")}


def test_cli_config_other_roles(env):
    r = _cli({"RRDSYNC_LISTEN_PORT": "2022", "RRDSYNC_SERVICE_HOST": "10.0.0.1"},
             "config", "--role", "receiver")
    assert r.returncode == 0, r.stderr
    assert "RRDSYNC_LISTEN_PORT=2022" in r.stdout.splitlines()
    assert "RRDSYNC_SERVICE_HOST" in r.stderr and len(r.stderr.splitlines()) == 1  # warning
    r = _cli({"RRDSYNC_MAX_LAG": "1m"}, "config", "--role", "serve")
    assert r.returncode == 0 and "RRDSYNC_MAX_LAG=1m" in r.stdout.splitlines()
    _one_line_exit_2(_cli({"RRDSYNC_LISTEN_PORT": "0"}, "config", "--role", "receiver"),
                     "RRDSYNC_LISTEN_PORT")
