"""Command-line plumbing the baseline scripts share: where to send, and how to reach it."""

from __future__ import annotations

import argparse


def parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("--src", required=True, help="source tree")
    ap.add_argument("--host", required=True, help="user@host")
    ap.add_argument("--dest", required=True, help="absolute destination directory")
    ap.add_argument("--port", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--known-hosts", required=True)
    return ap


def ssh_args(a: argparse.Namespace) -> list[str]:
    return ["ssh", "-p", a.port, "-i", a.key, "-o", f"UserKnownHostsFile={a.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]


def rsh(a: argparse.Namespace) -> str:
    """The value of rsync's ``-e`` (rsync splits it on spaces itself; no shell involved)."""
    return " ".join(ssh_args(a))
