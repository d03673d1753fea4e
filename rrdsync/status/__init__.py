"""Worker-side publishing of health and metrics, and the status server that reads them.

``api.py``: the protocols the engine is written against (``WorkerPublisher``,
``DestinationPublisher``). ``publish.py``: ``Publisher`` (writes into ``RRDSYNC_RUN_DIR``)
and ``NullPublisher``. ``server.py``: ``rrdsync serve``. ``verdict.py``: the rules of
``/healthz`` and ``/readyz``. ``metrics.py``: every metric. ``_healthcheck_adapter.py``
and ``_prometheus_adapter.py``: the only places that touch the libraries' internals.
"""
