# healthcheck-python ships no type information. Only ``healthcheck_python.health`` is
# imported by rrdsync (rrdsync/status/_healthcheck_adapter.py): see health.pyi.
