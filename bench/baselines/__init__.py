"""The replication approaches rrdsync is measured against, as people run them today."""
