"""Mirroring deletions to one destination (``RRDSYNC_DELETE=true`` only), guarded.

Every deletion is checked against the delete guard at the moment it would happen (a
source root that is missing, empty, or on another filesystem than at the first run is
never mirrored). After a full pass, what a mirror would delete is first listed by a dry
run, each listed path is confirmed absent at the source, and exactly those are deleted:
a source emptied meanwhile (an unmount, an ``rm -rf`` in progress) cannot take the
archive with it. A receiver that refuses deletes (``rrsync -no-del``) is reported once
and never asked again: content keeps flowing.
"""

from __future__ import annotations

import logging
import os

from . import guard, log
from .config import SidecarConfig
from .journal import SourceMemory
from .status.api import DestinationPublisher
from .threads import Beat, Stop
from .transfer import Result, Rsync

LOG = log.get("mirror")


class Mirror:
    def __init__(self, cfg: SidecarConfig, memory: SourceMemory, pub: DestinationPublisher,
                 label: str) -> None:
        self.cfg = cfg
        self.memory = memory
        self.pub = pub
        self.label = label
        self.refused_by_receiver = False
        self.due = False  # a full pass completed: plan deletions when nothing else is due

    def allowed(self, files: int | None) -> bool:
        """Deletions may be sent now (setting on, receiver willing, guard satisfied)."""
        if not self.cfg.delete or self.refused_by_receiver:
            return False
        refusal = guard.delete_refusal(self.cfg.source_dir, self.memory, self.cfg.included)
        if refusal:
            self.pub.delete_refused(refusal)
            LOG.error("delete_refused", refusal, destination=self.label, files=files,
                      error=refusal)
            return False
        return True

    def receiver_refuses(self, res: Result) -> None:
        self.refused_by_receiver = True
        self.due = False
        reason = ("the destination refuses deletes (an rrsync -no-del receiver?): content "
                  "keeps flowing, deletions are not mirrored")
        self.pub.delete_refused(reason)
        LOG.warning("delete_refused_by_destination", reason, destination=self.label,
                    error=res.error)

    def pass_completed(self) -> None:
        self.due = self.cfg.delete and not self.refused_by_receiver

    def run(self, rsync: Rsync, stop: Stop, beat: Beat) -> Result | None:
        """Plan and apply the deletions after a full pass; the run that failed as a whole
        (the caller backs off and plans again), or None."""
        self.due = False
        if not self.allowed(None):
            return None
        beat.mark("planning deletions")
        planned = rsync.planned_deletions(stop, beat)
        if planned.refused:
            self.receiver_refuses(planned)
            return None
        if not planned.completed:
            self.due = True
            return planned
        root = os.fspath(self.cfg.source_dir)
        gone = [p for p in planned.deleted if not os.path.lexists(os.path.join(root, p))]
        if not gone or not self.allowed(len(gone)):
            return None
        res = rsync.delete_paths(gone, stop, beat)
        LOG.log(logging.INFO if res.result == "ok" else logging.WARNING, "deletions_mirrored",
                destination=self.label, files=len(res.deleted), duration_s=res.duration,
                exit_code=res.exit_code, error=res.error)
        if not res.completed:
            self.due = True
        return None
