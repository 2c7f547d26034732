"""A local, Logfire-compatible query server: real SQL on DataFusion over real-shaped telemetry.

Needs the ``server`` extra: ``pip install 'logfire-io[server]'``.
"""

from logfire_io.server._local import LocalLogfire
from logfire_io.server.synth import synth_metrics, synth_records

__all__ = ["LocalLogfire", "synth_metrics", "synth_records"]
