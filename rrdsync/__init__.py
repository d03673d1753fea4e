"""rrdsync: keep a destination's copy of an OpenNMS RRD tree current over rsync and SSH."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rrdsync")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
