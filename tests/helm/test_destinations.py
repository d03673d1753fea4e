"""Several destinations from one sidecar (`destinations:` or a comma-separated
`config.dest`, rendered into RRDSYNC_DEST), and many senders into one receiver, each
confined to its own directory (`receiver.clients` -> `dir=NAME` authorized_keys lines)."""

from __future__ import annotations

import base64

import helm_python as helm
import pytest

from tests.helm.chart import (
    KUBE_VERSION,
    MINIMAL,
    RECEIVER,
    by_kind,
    container,
    engine_accepts,
    hook_pod,
    merged,
    notes,
    objects,
    one,
    pod_spec,
    validate,
)

pytestmark = pytest.mark.helm

NFS = {"nfs": {"server": "nas.example", "path": "/export/rrd"}}


def _sidecar(**override) -> dict:
    """MINIMAL with `destinations` instead of its config.dest."""
    values = merged(MINIMAL, override)
    values["config"] = {k: v for k, v in values["config"].items() if k != "dest"}
    return values


def _env(values: dict) -> dict[str, str]:
    return next(d for d in objects(values) if d["kind"] == "ConfigMap"
                and d["metadata"]["name"] == "rel-rrdsync")["data"]


def _refused(values: dict, error=helm.HelmError) -> str:
    with pytest.raises(error) as exc:
        objects(values)
    return str(exc.value)


@pytest.mark.parametrize("entries, dest", [
    (["rrdsync@a.example:/rrd"], "rrdsync@a.example:/rrd"),
    (["rrdsync@a.example:/rrd", "ssh://archive@b.example:2200/srv/rrd"],
     "rrdsync@a.example:/rrd,ssh://archive@b.example:2200/srv/rrd"),
    (["a.example:/rrd", "[fd00::5]:/rrd", "ssh://[fd00::6]:22/rrd"],
     "a.example:/rrd,[fd00::5]:/rrd,ssh://[fd00::6]:22/rrd"),
    ([{"host": "a.example", "path": "/rrd"}], "a.example:/rrd"),
    ([{"host": "a.example", "user": "u", "path": "/rrd"}], "u@a.example:/rrd"),
    ([{"host": "a.example", "user": "u", "port": 2222, "path": "/rrd"}],
     "ssh://u@a.example:2222/rrd"),
    ([{"host": "fd00::5", "path": "/rrd"}], "[fd00::5]:/rrd"),
    ([{"host": "fd00::5", "user": "u", "port": 2222, "path": "/r d"}],
     "ssh://u@[fd00::5]:2222/r d"),
])
def test_destinations_render_rrdsync_dest(entries, dest):
    values = _sidecar(destinations=entries)
    env = _env(values)
    assert env["RRDSYNC_DEST"] == dest
    assert env["RRDSYNC_SSH_PORT"] == "2222"  # for the entries without a port of their own
    for doc in objects(values):
        validate(doc)
    engine_accepts(env)


def test_single_config_dest_keeps_working():
    """Values written for one destination render exactly as before."""
    assert _env(MINIMAL)["RRDSYNC_DEST"] == "rrdsync@receiver.rrd.svc:/"
    assert _env(MINIMAL) == _env(_sidecar(destinations=["rrdsync@receiver.rrd.svc:/"]))


def test_config_dest_may_list_several():
    values = merged(MINIMAL, {"config": {"dest": "a.example:/rrd, ssh://b.example:2200/rrd"}})
    assert _env(values)["RRDSYNC_DEST"] == "a.example:/rrd,ssh://b.example:2200/rrd"
    assert _env(values) == _env(_sidecar(destinations=["a.example:/rrd",
                                                       "ssh://b.example:2200/rrd"]))


def test_network_policy_allows_each_destination_port():
    values = _sidecar(destinations=["a.example:/rrd", "ssh://b.example:2200/rrd",
                                    {"host": "c.example", "port": 2201, "path": "/rrd"},
                                    "ssh://d.example/rrd"],
                      networkPolicy={"enabled": True})
    np = one(objects(values), "NetworkPolicy")["spec"]
    dest_rule = next(r for r in np["egress"] if r["ports"][0]["port"] != 53)
    # config.sshPort (2222) for the entries without a port, once.
    assert [p["port"] for p in dest_rule["ports"]] == [2222, 2200, 2201]


def test_local_destinations_with_their_own_volumes():
    values = _sidecar(destinations=["rrdsync@a.example:/rrd",
                                    {"path": "/copy-1", "volume": NFS},
                                    {"path": "/copy-2",
                                     "volume": {"persistentVolumeClaim": {"claimName": "c2"}}}])
    docs = objects(values)
    for doc in docs:
        validate(doc)
    assert _env(values)["RRDSYNC_DEST"] == "rrdsync@a.example:/rrd,/copy-1,/copy-2"
    mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
    assert mounts["rrdsync-dest-1"]["mountPath"] == "/copy-1"
    assert mounts["rrdsync-dest-2"]["mountPath"] == "/copy-2"
    assert "readOnly" not in mounts["rrdsync-dest-1"]
    assert "rrdsync-ssh" in mounts  # the SSH destination still has its key
    vols = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert vols["rrdsync-dest-1"]["nfs"] == NFS["nfs"]
    assert vols["rrdsync-dest-2"]["persistentVolumeClaim"] == {"claimName": "c2"}
    assert by_kind(docs, "Secret")


def test_one_local_destination_may_use_destination_volume():
    values = _sidecar(destinations=["rrdsync@a.example:/rrd", "/replica"],
                      destinationVolume=NFS)
    docs = objects(values)
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["rrdsync-dest"] == "/replica"


def test_only_local_destinations_need_no_key():
    values = _sidecar(destinations=[{"path": "/copy", "volume": NFS}],
                      ssh={"privateKey": "", "knownHosts": ""})
    docs = objects(values)
    assert not by_kind(docs, "Secret")
    assert "rrdsync-ssh" not in {m["name"] for m in container(docs)["volumeMounts"]}


def test_notes_name_every_destination():
    text = notes(_sidecar(destinations=["a.example:/rrd", "ssh://b.example:2200/rrd"]))
    assert "a.example:/rrd,ssh://b.example:2200/rrd" in text


def test_changing_destinations_rolls_the_pod():
    a = one(objects(_sidecar(destinations=["a.example:/rrd"])), "Deployment")
    b = one(objects(_sidecar(destinations=["a.example:/rrd", "b.example:/rrd"])), "Deployment")
    key = "checksum/config"
    assert a["spec"]["template"]["metadata"]["annotations"][key] != \
        b["spec"]["template"]["metadata"]["annotations"][key]


@pytest.mark.parametrize("values, words", [
    (merged(MINIMAL, {"destinations": ["b.example:/rrd"]}), "not both"),
    (_sidecar(destinations=["u@a.example:/rrd", "v@a.example:/rrd"]),
     'destination "a.example:/rrd" is listed twice'),
    (_sidecar(destinations=["ssh://a.example:0/rrd"]), "port must be 1-65535"),
    (_sidecar(destinations=["ssh://a.example:70000/rrd"]), "port must be 1-65535"),
    (_sidecar(destinations=["/copy-1", "/copy-2"], destinationVolume=NFS),
     "give each its own volume"),
    (_sidecar(destinations=["a.example:/rrd", "/copy"]), "needs destinationVolume"),
    (merged(MINIMAL, {"config": {"dest": "a.example:/rrd,/copy"}}), "needs destinationVolume"),
])
def test_templates_refuse(values, words):
    assert words in _refused(values, helm.HelmRenderError)


@pytest.mark.parametrize("destinations, where", [
    ([""], "/destinations/0"),
    (["a.example:/rrd,b.example:/rrd"], "/destinations/0"),          # one entry per item
    (["a.example:rrd"], "/destinations/0"),                          # relative path
    (["-oProxyCommand=x:/y"], "/destinations/0"),
    (["ssh://a.example:22x/rrd"], "/destinations/0"),
    (["a.example:/rrd", "a.example:/rrd"], "/destinations"),          # duplicate
    ([{"host": "a.example"}], "/destinations/0"),                     # no path
    ([{"host": "a.example", "path": "/rrd", "volume": NFS}], "/destinations/0"),
    ([{"port": 22, "path": "/rrd"}], "/destinations/0"),              # port without host
    ([{"user": "u", "path": "/rrd"}], "/destinations/0"),
    ([{"host": "a.example", "path": "/rrd", "port": 0}], "/destinations/0"),
    ([{"host": "-x", "path": "/rrd"}], "/destinations/0"),
    ([{"host": "a.example", "path": "/rrd", "extra": 1}], "/destinations/0"),
    ("a.example:/rrd", "/destinations"),
])
def test_schema_refuses_bad_destinations(destinations, where):
    assert where in _refused(_sidecar(destinations=destinations), helm.HelmValuesError)


@pytest.mark.parametrize("dest", ["a.example:/rrd,", ",a.example:/rrd", "a.example:/rrd,,/x",
                                  "a.example:/rrd,b.example:rrd"])
def test_schema_refuses_bad_dest_lists(dest):
    values = merged(MINIMAL, {"config": {"dest": dest}})
    assert "/config/dest" in _refused(values, helm.HelmValuesError)


def test_schema_requires_some_destination():
    message = _refused(_sidecar(), helm.HelmValuesError)
    assert "/config/dest" in message or "destinations" in message


def test_hook_pod_mounts_local_destination_volumes():
    values = _sidecar(destinations=["rrdsync@a.example:/rrd", {"path": "/copy", "volume": NFS}])
    pod = hook_pod(objects(values))
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["rrdsync-dest-1"] == "/copy" and "rrdsync-ssh" in mounts
    validate(pod)


# --- the receiver: many senders, each in its own directory

CLIENTS = [{"name": "customer-a", "key": "ssh-ed25519 AAAAKEYA onms-a"},
           {"name": "customer_b.2", "key": "ssh-ed25519 AAAAKEYB onms-b "}]


def _authorized_keys(values: dict) -> str:
    secret = one(objects(values), "Secret")
    return base64.b64decode(secret["data"]["authorized_keys"]).decode()


def test_receiver_clients_become_dir_lines():
    values = merged(RECEIVER, {"receiver": {"clients": CLIENTS}})
    assert _authorized_keys(values) == (
        "ssh-ed25519 AUTHORIZED-KEY-SENTINEL sidecar\n"
        "dir=customer-a ssh-ed25519 AAAAKEYA onms-a\n"
        "dir=customer_b.2 ssh-ed25519 AAAAKEYB onms-b\n")
    for doc in objects(values):
        validate(doc)
        validate(doc, "1.25.0")


def test_receiver_with_clients_only():
    values = merged(RECEIVER, {"receiver": {"authorizedKeys": [], "clients": CLIENTS[:1]}})
    assert _authorized_keys(values) == "dir=customer-a ssh-ed25519 AAAAKEYA onms-a\n"


def test_receiver_plain_keys_unchanged():
    assert _authorized_keys(RECEIVER) == "ssh-ed25519 AUTHORIZED-KEY-SENTINEL sidecar\n"


def test_new_client_rolls_the_receiver():
    def secret_sum(values):
        dep = one(objects(values), "Deployment")
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]

    assert secret_sum(RECEIVER) != secret_sum(merged(RECEIVER, {"receiver": {"clients":
                                                                             CLIENTS}}))


def test_receiver_existing_secret_wins_over_clients():
    docs = objects(merged(RECEIVER, {"receiver": {"clients": CLIENTS,
                                                  "existingSecret": "keys"}}))
    assert not by_kind(docs, "Secret")


def test_receiver_needs_some_key():
    values = merged(RECEIVER, {"receiver": {"authorizedKeys": []}})
    assert "receiver.clients" in _refused(values, helm.HelmRenderError)


@pytest.mark.parametrize("client", [
    {"name": "a/b", "key": "ssh-ed25519 AAAA"},
    {"name": "..", "key": "ssh-ed25519 AAAA"},
    {"name": ".", "key": "ssh-ed25519 AAAA"},
    {"name": "", "key": "ssh-ed25519 AAAA"},
    {"name": "a b", "key": "ssh-ed25519 AAAA"},
    {"name": "a", "key": "not a key"},
    {"name": "a", "key": 'command="sh" ssh-ed25519 AAAA'},
    {"name": "a"},
    {"name": "a", "key": "ssh-ed25519 AAAA", "dir": "b"},
])
def test_schema_refuses_bad_clients(client):
    values = merged(RECEIVER, {"receiver": {"clients": [client]}})
    assert "/receiver/clients/0" in _refused(values, helm.HelmValuesError)


def test_kube_version_in_use():
    assert KUBE_VERSION  # the strict validations above use the newest schemas shipped
