"""Shared fixtures: each kind lives in its own module under tests/fixtures and is reused."""

pytest_plugins = [
    "tests.fixtures.sshd",
    "tests.fixtures.rrd",
    "tests.fixtures.containers",
    "tests.fixtures.status",
]
