"""A local, Logfire-compatible query server: real SQL on DataFusion over real-shaped telemetry.

Needs the ``server`` extra: ``pip install 'logfire-io[server]'``.
"""

try:
    import datafusion as _datafusion  # noqa: F401 - checked here so that the error names the extra
    import starlette as _starlette  # noqa: F401
    import uvicorn as _uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    msg = f"the local Logfire server needs the `server` extra ({exc.name} is missing): pip install 'logfire-io[server]'"
    raise ImportError(msg) from exc

from logfire_io.server._local import LocalLogfire
from logfire_io.server.synth import synth_metrics, synth_records

__all__ = ["LocalLogfire", "synth_metrics", "synth_records"]
