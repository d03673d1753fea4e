"""Replication benchmark: rrdsync against lsyncd, an rsync loop and a per-file script."""
