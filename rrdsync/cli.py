"""The ``rrdsync`` command: run, serve, once, check, verify, config.

Exit codes: 0 success (or stopped by a signal), 1 runtime failure, 2 configuration
error. A configuration error is exactly one line on stderr and nothing else, so an
orchestrator's event log shows the variable to fix.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from . import __version__, config, log

COMMANDS = {
    "run": "the sync worker: reconcile, then watch, batch, send, retry, forever",
    "serve": "the status server: /healthz, /readyz, /metrics",
    "once": "one full reconciliation, then exit (0 in sync, 1 failed)",
    "check": "validate configuration, reach each destination, prove it is writable",
    "verify": "compare source and destination by content; list what differs "
    "(--repair: re-send it)",
    "config": "print the effective configuration (secrets redacted)",
}
EPILOGS = {
    "verify": "Prints, for each destination, one relative path per line (unprintable bytes "
    "escaped \\#ooo, as rsync does): files missing or different there, and files found "
    "only there when RRDSYNC_DELETE=true. With several destinations, each list follows a "
    "line '# <destination>'. With --repair, '# repaired N files' and the paths repaired "
    "follow, then '# still different after repair: N files' and those paths if any are "
    "left. Problems (unreachable, failed, warnings) go to stderr. Exit 0 identical (after "
    "repair, with --repair), 1 drift or a destination failed, 2 configuration error.",
    "check": "With several destinations, each destination's lines follow a line "
    "'# <destination>'. Exit 0 all ok, 1 a destination unreachable or not writable, "
    "2 configuration error.",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rrdsync", description="Replicate an OpenNMS RRD tree over rsync and SSH. "
        "Configured only through RRDSYNC_* environment variables.")
    p.add_argument("--version", action="version", version=f"rrdsync {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        sp = sub.add_parser(name, help=text, description=text, epilog=EPILOGS.get(name))
        if name == "verify":
            sp.add_argument("--repair", action="store_true",
                            help="re-send exactly the files that differ or are missing, in "
                            "full (--ignore-times), then compare again")
        if name == "config":
            sp.add_argument("--role", choices=config.ROLES, default=config.SIDECAR,
                            help="validate and print the variables of this role"
                            " (default: sidecar)")
    return p


def load_config(command: str, role: str = config.SIDECAR) -> config.AnyConfig:
    """Hands the environment to the loader of the command's role (the receiver role's
    entry point, ``receiver.main``, does the same for its own): ``serve`` has its own
    variables, ``config`` loads the role it is asked about, every other command is the
    worker (sidecar) role."""
    if command == "serve":
        return config.load_serve(os.environ)
    if command == "config":
        return config.LOADERS[role](os.environ)
    return config.load_sidecar(os.environ)


def main(argv: list[str] | None = None) -> int:
    # A stop requested while we start up is honoured once the worker exists (exit 0).
    early_stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early_stop.append(signum))
    args = _parser().parse_args(argv)
    if args.command != "run":  # only the worker drains; the others stop the usual way
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if early_stop:
            return 128 + early_stop[0]
    try:
        cfg = load_config(args.command, getattr(args, "role", config.SIDECAR))
    except config.ConfigError as e:
        sys.stderr.write(f"rrdsync: configuration error: {e}\n")
        return 2

    long_running = args.command in ("run", "serve")
    if long_running:
        log.setup(cfg.log_level, cfg.log_format, sys.stdout)
    else:  # one-shot commands: a report on stdout, logs on stderr, quiet by default
        level = "WARNING" if cfg.log_level == "INFO" else cfg.log_level
        log.setup(level, cfg.log_format, sys.stderr)
    for w in cfg.warnings:
        log.get().warning("config_warning", w)

    if args.command == "config":
        for name, value in config.public_items(cfg):
            print(f"{name}={value}")
        return 0
    if isinstance(cfg, config.ServeConfig):  # serve
        from .status.server import serve

        return serve(cfg)
    if not isinstance(cfg, config.SidecarConfig):  # the receiver's: only for "config"
        raise TypeError(f"{args.command} got a {type(cfg).__name__}")
    if args.command == "check":
        from .check import check

        return check(cfg)
    if args.command == "verify":
        from .verify import verify

        return verify(cfg, repair=args.repair)

    from .engine import Engine
    from .status.publish import NullPublisher, Publisher

    once = args.command == "once"
    engine = Engine(cfg, NullPublisher() if once else Publisher(cfg, cfg.dests), once=once)
    signal.signal(signal.SIGTERM, engine.request_stop)
    signal.signal(signal.SIGINT, engine.request_stop)
    if early_stop:
        engine.request_stop(early_stop[0])
    try:
        return engine.run()
    except Exception as e:  # a bug or an unrecoverable fault: say so, exit 1
        log.get().exception("fatal", error=str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
