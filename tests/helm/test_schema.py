"""Bad values are refused at install time, before anything reaches the cluster: by
values.schema.json (types, formats, names) or, for rules across several values, by
the templates with a message that says what to set."""

from __future__ import annotations

import helm_python as helm
import pytest

from tests.helm.chart import MINIMAL, RECEIVER, merged, objects

pytestmark = pytest.mark.helm


def refused(values: dict, error=helm.HelmError) -> str:
    with pytest.raises(error) as exc:
        objects(values)
    return str(exc.value)


def test_no_destination():
    values = merged(MINIMAL, {"config": {"dest": ""}})
    assert "/config/dest" in refused(values, helm.HelmValuesError)
    assert "/config/dest" in refused({"source": {"hostPath": "/x"}}, helm.HelmValuesError)


@pytest.mark.parametrize("key, value", [
    ("settle", "1m30s"),       # no compound forms
    ("settle", "5 minutes"),
    ("maxDelay", "-1s"),
    ("rescanInterval", "1d"),
    ("timeout", "0"),          # 0 only where it turns something off
    ("maxLag", "0s"),
    ("pollInterval", 0),
    ("livenessTimeout", "0.0ms"),
    ("settle", True),
])
def test_bad_duration(key, value):
    message = refused(merged(MINIMAL, {"config": {key: value}}), helm.HelmValuesError)
    assert f"/config/{key}" in message


@pytest.mark.parametrize("key, value", [("settle", "0"), ("settle", 0), ("maxDelay", "1.5s"),
                                        ("rescanInterval", "0"), ("maxLag", ".5h"),
                                        ("timeout", 90), ("settle", "250ms")])
def test_good_duration(key, value):
    objects(merged(MINIMAL, {"config": {key: value}}))


def test_unknown_role():
    assert "/role" in refused(merged(MINIMAL, {"role": "primary"}), helm.HelmValuesError)


@pytest.mark.parametrize("override, where", [
    ({"config": {"desst": "x:/y"}}, "desst"),                     # misspelt key
    ({"confg": {}}, "confg"),
    ({"config": {"dest": "host:relative/path"}}, "/config/dest"),
    ({"config": {"dest": "-oProxyCommand=x:/y"}}, "/config/dest"),
    ({"config": {"sshPort": 70000}}, "/config/sshPort"),
    ({"config": {"sshPort": "22"}}, "/config/sshPort"),
    ({"config": {"sshHostKeyPolicy": "no"}}, "/config/sshHostKeyPolicy"),
    ({"config": {"watch": "fanotify"}}, "/config/watch"),
    ({"config": {"include": []}}, "/config/include"),
    ({"config": {"include": ["snmp/*.rrd"]}}, "/config/include"),
    ({"config": {"delete": "yes"}}, "/config/delete"),
    ({"config": {"httpAddr": "8080"}}, "/config/httpAddr"),
    ({"config": {"stateDir": "var/lib"}}, "/config/stateDir"),
    ({"config": {"rrdcached": "tcp://x"}}, "/config/rrdcached"),
    ({"config": {"logLevel": "verbose"}}, "/config/logLevel"),
    ({"terminationGracePeriodSeconds": 5}, "/terminationGracePeriodSeconds"),
    ({"extraEnv": [{"name": "RRDSYNC_DEST", "value": "x"}]}, "/extraEnv"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"receiver": {"authorizedKeys": ["not a key"]}}, "/receiver/authorizedKeys"),
])
def test_schema_refuses(override, where):
    assert where in refused(merged(MINIMAL, override), helm.HelmValuesError)


@pytest.mark.parametrize("override, words", [
    ({"source": {"existingClaim": ""}}, "exactly one of source"),
    ({"source": {"hostPath": "/opt/rrd"}}, "exactly one of source"),
    ({"source": {"existingClaim": "", "volumeName": "rrd"}}, "standalone=false"),
    ({"ssh": {"privateKey": ""}}, "ssh.existingSecret or ssh.privateKey"),
    ({"ssh": {"knownHosts": ""}}, "accept-new"),
    ({"config": {"dest": "/replica"}}, "destinationVolume"),
    ({"config": {"delete": True}}, "state.persistence.enabled=true"),
])
def test_templates_refuse_sidecar(override, words):
    assert words in refused(merged(MINIMAL, override), helm.HelmRenderError)


@pytest.mark.parametrize("override, words", [
    ({"receiver": {"authorizedKeys": []}}, "receiver.authorizedKeys"),
    ({"state": {"persistence": {"enabled": False}}}, "must survive a reschedule"),
    ({"config": {"hostKeyDir": "/etc/ssh"}}, "must lie under config.stateDir"),
    ({"securityContext": {"runAsUser": 1000}}, "must be 10001"),
])
def test_templates_refuse_receiver(override, words):
    assert words in refused(merged(RECEIVER, override), helm.HelmRenderError)


def test_receiver_needs_no_destination():
    objects(merged(RECEIVER, {"config": {"dest": ""}}))
