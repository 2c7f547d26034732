"""``LocalLogfire``: a Logfire-compatible query server on loopback, as a context manager."""

from __future__ import annotations

import secrets
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Self

import uvicorn

from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA
from logfire_io.server.app import QueryLogEntry, ServerState, create_app
from logfire_io.server.faults import FaultPlan, parse_faults, quiet_injected_resets
from logfire_io.server.store import Store
from logfire_io.server.synth import DEFAULT_SPAN, synth_metrics, synth_records
from logfire_io.server.tables import TableSource, conform, load
from logfire_io.server.workers import WorkerPool

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable
    from types import TracebackType

    from logfire_io.server.engine import Bounds

__all__ = ["LocalLogfire"]

_BOUNDS = ("[)", "[]", "(]", "()")


def _fresh_end() -> datetime:
    """The end of the demo window: the start of the next whole hour, so the data looks recent."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now + timedelta(hours=1)


class LocalLogfire:
    """A local Logfire query server: real SQL (DataFusion) over real-shaped tables, the real wire format.

    Use it as a context manager; it listens on ``base_url`` until the block ends. Point any Logfire query client
    at it with ``base_url=srv.base_url`` and ``read_token=srv.read_token``.

    Parameters
    ----------
    demo_rows
        Number of synthetic ``records`` rows to serve when ``records`` is not given (``metrics`` get a tenth).
    records, metrics
        Your own tables: a pyarrow Table or a Parquet path, checked against Logfire's schema.
    read_token
        The token clients must send; a random ``pylf_v1_local_…`` token when None.
    host, port
        Where to listen; port 0 picks a free port. Binds loopback unless told otherwise.
    seed, demo_end
        Make the synthetic data reproducible: same seed and end, same rows. ``demo_end`` defaults to the start
        of the next hour, so ``now() - interval '1 hour'`` finds rows.
    bounds
        Whether ``min_timestamp``/``max_timestamp`` are inclusive (``[``/``]``) or exclusive (``(``/``)``).
        The real service's semantics are unverified; the default is half-open ``"[)"``.
    deadline
        Seconds a query may run before it is stopped (its worker process is killed) and answered with a 400.
    memory_limit
        Bytes of DataFusion operator memory per query worker.
    workers
        Number of query worker processes (queries that run at once).
    latency_ms
        Delay added before every query answer, to model a real network and engine.
    faults, fault_seed
        Random faults, e.g. ``"429:0.1,reset:0.05"`` (see :mod:`logfire_io.server.faults`); queue exact ones
        with ``srv.faults.push(kind, times)``.
    rate_limit
        Query requests per second before answering 429 with ``Retry-After``.
    api_versions
        Which query endpoints exist (``{"v1", "v2"}``); drop one to imitate an older or newer service.
    gzip
        Compress responses when the client accepts gzip.
    write_token
        The token OTLP exporters must send to ``/v1/traces``, ``/v1/logs`` and ``/v1/metrics`` (the ``logfire``
        SDK's ``token``); a random one when None. It cannot query, and the read token cannot export.
    data_dir
        Keep the tables (loaded and ingested) in this directory, durably, and serve them again when a server
        starts on it; a stored table is replaced only when ``records``/``metrics`` are given again, and no
        synthetic rows are added to an existing store. A temporary directory when None.
    max_ingest_bytes
        Largest OTLP request body accepted, compressed and decompressed (413 beyond it).
    """

    def __init__(
        self,
        demo_rows: int = 100_000,
        records: TableSource | None = None,
        metrics: TableSource | None = None,
        read_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        demo_end: datetime | None = None,
        demo_span: timedelta = DEFAULT_SPAN,
        bounds: Bounds = "[)",
        deadline: float = 30.0,
        memory_limit: int = 2 << 30,
        workers: int = 2,
        latency_ms: float = 0.0,
        faults: str | dict[str, float] | None = None,
        fault_seed: int | None = None,
        rate_limit: float | None = None,
        api_versions: Iterable[str] = ("v1", "v2"),
        gzip: bool = True,
        write_token: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        max_ingest_bytes: int = 64 << 20,
    ) -> None:
        if bounds not in _BOUNDS:
            msg = f"`bounds` must be one of {_BOUNDS}, got {bounds!r}"
            raise ValueError(msg)
        if demo_rows < 0:
            msg = f"`demo_rows` must be >= 0, got {demo_rows}"
            raise ValueError(msg)
        end = demo_end or _fresh_end()
        self.read_token = read_token or f"pylf_v1_local_{secrets.token_hex(20)}"
        self.write_token = write_token or f"pylf_v1_local_{secrets.token_hex(20)}"
        if self.write_token == self.read_token:
            msg = "`write_token` must differ from `read_token`: read tokens cannot write and write tokens cannot read"
            raise ValueError(msg)
        self._store = Store(data_dir, {"records_all": RECORDS_SCHEMA, "metrics": METRICS_SCHEMA})
        if records is not None or self._store.is_new:  # a stored table is served again unless replaced
            self._store.put_loaded(
                "records_all",
                conform(load(records), RECORDS_SCHEMA, "records")
                if records is not None
                else synth_records(demo_rows, seed=seed, end=end, span=demo_span),
            )
        if metrics is not None or self._store.is_new:
            self._store.put_loaded(
                "metrics",
                conform(load(metrics), METRICS_SCHEMA, "metrics")
                if metrics is not None
                else synth_metrics(demo_rows // 10 if records is None else 0, seed=seed, end=end, span=demo_span),
            )
        self.host, self._port = host, port
        self.faults = FaultPlan(parse_faults(faults), seed=fault_seed)
        paths = {name: str(self._store.directory(name)) for name in ("records_all", "metrics")}
        self._pool = WorkerPool(paths, size=workers, memory_limit=memory_limit)
        self._state = ServerState(
            read_token=self.read_token,
            pool=self._pool,
            faults=self.faults,
            bounds=bounds,
            deadline=deadline,
            latency_ms=latency_ms,
            rate_limit=rate_limit,
            api_versions=frozenset(api_versions),
            write_token=self.write_token,
            store=self._store,
            max_ingest_bytes=max_ingest_bytes,
        )
        self._gzip = gzip
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._socket else "not started"
        return f"LocalLogfire({where}, records={self.num_records:,}, metrics={self.num_metrics:,})"

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._socket is None:
            msg = "the server is not running; use `with LocalLogfire(...) as srv:` or call `start()`"
            raise RuntimeError(msg)
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def num_records(self) -> int:
        """Rows of ``records_all`` (pending spans included) stored so far, loaded and ingested."""
        return self._store.num_rows("records_all")

    @property
    def num_metrics(self) -> int:
        """Rows of ``metrics`` stored so far, loaded and ingested."""
        return self._store.num_rows("metrics")

    @property
    def queries(self) -> list[QueryLogEntry]:
        """The query requests received so far, oldest first (the last 1,000)."""
        return list(self._state.query_log)

    def _config(self) -> uvicorn.Config:
        quiet_injected_resets()
        app = create_app(self._state, gzip=self._gzip)
        return uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(512)
        self._socket = sock
        return sock

    def start(self) -> Self:
        """Start serving in a background thread; returns once the server accepts connections."""
        sock = self._bind()
        self._server = uvicorn.Server(self._config())
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        self._pool.wait_ready()
        while not self._server.started:
            if not self._thread.is_alive():
                msg = "the local server failed to start; see the log above"
                raise RuntimeError(msg)
            threading.Event().wait(0.01)
        return self

    def serve_forever(self, on_ready: Callable[[LocalLogfire], None] | None = None) -> None:
        """Serve in this thread until interrupted (Ctrl-C); ``on_ready`` is called once it is listening."""
        sock = self._bind()
        self._pool.wait_ready()
        if on_ready is not None:
            on_ready(self)
        self._server = uvicorn.Server(self._config())
        try:
            self._server.run(sockets=[sock])
        finally:
            self.close()

    def close(self) -> None:
        """Stop serving and release the workers and files."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._pool.close()
        if self._socket is not None:
            self._socket.close()
        self._store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
