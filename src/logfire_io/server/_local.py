"""``LocalLogfire``: a Logfire-compatible query server on loopback, as a context manager."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Self

import uvicorn

from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA
from logfire_io.server.app import GzipPolicy, QueryLogEntry, ServerState, create_app
from logfire_io.server.faults import FaultPlan, parse_faults, quiet_injected_resets
from logfire_io.server.handoff import HandOffProtocol
from logfire_io.server.ratelimit import RateDecision, RateLimiter
from logfire_io.server.store import Store
from logfire_io.server.synth import DEFAULT_SPAN, synth_metrics, synth_records
from logfire_io.server.tables import TableSource, conform, load
from logfire_io.server.workers import WorkerPids, WorkerPool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from types import TracebackType

    from logfire_io.server.engine import Bounds

__all__ = ["LocalLogfire"]

_BOUNDS = ("[)", "[]", "(]", "()")


def default_workers() -> int:
    """The CPU count, at least 2 (the client reads with 4 requests in flight by default)."""
    return max(2, os.cpu_count() or 2)


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop signal only stops it.

    uvicorn re-raises SIGTERM once it has shut down, which kills the process before ``LocalLogfire.close()``
    can remove the temporary tables; here SIGTERM and SIGINT both just end ``serve_forever()``.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _fresh_end() -> datetime:
    """The end of the demo window: the server's start (to the second), so the data is recent and none is future."""
    return datetime.now(UTC).replace(microsecond=0)


class LocalLogfire:
    """A local Logfire query server: real SQL (DataFusion) over real-shaped tables, the real wire format.

    Use it as a context manager; it listens on ``base_url`` until the block ends. Point any Logfire query client
    at it with ``base_url=srv.base_url`` and ``read_token=srv.read_token``.

    Parameters
    ----------
    demo_rows
        Number of synthetic rows of ``records_all`` to serve when ``records`` is not given; about 0.4 % of them
        are pending spans, which ``records`` leaves out. ``metrics`` get a tenth as many rows.
    records, metrics
        Your own tables: a pyarrow Table or a Parquet path, checked against Logfire's schema.
    read_token
        The token clients must send; a random ``pylf_v1_local_…`` token when None.
    host, port
        Where to listen; port 0 picks a free port. Binds loopback unless told otherwise.
    seed, demo_end
        Make the synthetic data reproducible: same seed and end, same rows. ``demo_end`` (exclusive) defaults
        to the time the server is created, so ``now() - interval '1 hour'`` finds rows and none lie in the future.
    bounds
        Whether ``min_timestamp``/``max_timestamp`` are inclusive (``[``/``]``) or exclusive (``(``/``)``).
        The real service's semantics are unverified; the default is half-open ``"[)"``.
    deadline
        Seconds a query request may take from its first byte to its last, including waiting for a worker and
        sending the answer. A query still running then is stopped (its worker process is killed) and answered
        with a 400; an answer still being sent is cut off.
    memory_limit
        Bytes of DataFusion operator memory per query worker.
    workers
        Number of query worker processes (queries that run at once); default: the CPU count, at least 2.
    max_body_bytes
        Largest request body accepted (SQL text is small); larger ones get a 413 without being read.
    max_result_bytes
        Largest query result a worker will hold or send (the Arrow data, and the encoded body); a query over it
        fails with a 400 that says so, instead of growing memory without bound.
    latency_ms
        Delay added before every query answer, to model a real network and engine.
    faults, fault_seed
        Random faults, e.g. ``"429:0.1,reset:0.05"`` (see :mod:`logfire_io.server.faults`); queue exact ones
        with ``srv.faults.push(kind, times)``.
    rate_limit
        Query requests per second allowed per read token (bursts of one second's worth pass); faster requests
        get a 429 with ``Retry-After``, as from Logfire. Each decision is in :attr:`rate_log`.
    api_versions
        Which query endpoints exist (``{"v1", "v2"}``); drop one to imitate an older or newer service.
    gzip
        Compress answers when the client accepts gzip: ``True``, ``False``, or ``"auto"`` (the default), which
        compresses everything but Arrow streams to a loopback client (there, compressing costs several times
        more than sending the bytes).
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
        workers: int | None = None,
        max_body_bytes: int = 1 << 20,
        max_result_bytes: int = 256 << 20,
        latency_ms: float = 0.0,
        faults: str | dict[str, float] | None = None,
        fault_seed: int | None = None,
        rate_limit: float | None = None,
        api_versions: Iterable[str] = ("v1", "v2"),
        gzip: GzipPolicy = "auto",
        write_token: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        max_ingest_bytes: int = 64 << 20,
    ) -> None:
        if bounds not in _BOUNDS:
            msg = f"`bounds` must be one of {_BOUNDS}, got {bounds!r}"
            raise ValueError(msg)
        for name, value in (
            ("deadline", deadline),
            ("max_body_bytes", max_body_bytes),
            ("max_result_bytes", max_result_bytes),
        ):
            if value <= 0:
                msg = f"`{name}` must be > 0, got {value!r}"
                raise ValueError(msg)
        if workers is not None and workers < 1:
            msg = f"`workers` must be at least 1, got {workers!r}"
            raise ValueError(msg)
        if gzip not in (True, False, "auto"):
            msg = f"`gzip` must be True, False or 'auto', got {gzip!r}"
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
        self._pool = WorkerPool(
            paths, size=default_workers() if workers is None else workers, memory_limit=memory_limit
        )
        self._state = ServerState(
            read_token=self.read_token,
            pool=self._pool,
            faults=self.faults,
            bounds=bounds,
            deadline=deadline,
            latency_ms=latency_ms,
            rate=RateLimiter(rate_limit),
            max_body_bytes=max_body_bytes,
            max_result_bytes=max_result_bytes,
            gzip=gzip,
            api_versions=frozenset(api_versions),
            write_token=self.write_token,
            store=self._store,
            max_ingest_bytes=max_ingest_bytes,
        )
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

    @property
    def rate_log(self) -> list[RateDecision]:
        """When each query request met the rate limit and whether it got a 429 (``time.monotonic()`` stamps)."""
        return list(self._state.rate.log)

    @property
    def worker_pids(self) -> WorkerPids:
        """Process ids of the query workers, ``.idle``, ``.busy`` and ``.starting`` (for tests that kill them)."""
        return self._pool.pids

    @property
    def workers(self) -> int:
        """The size of the query worker pool, which the server keeps whatever happens to a worker."""
        return self._pool.size

    def _config(self) -> uvicorn.Config:
        quiet_injected_resets()
        app = create_app(self._state)
        return uvicorn.Config(
            app, http=HandOffProtocol, log_level="warning", access_log=False, timeout_graceful_shutdown=1
        )

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
        # every small answer waits for a delayed ACK (about 40 ms on Linux).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError as exc:
            sock.close()
            reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            msg = f"cannot listen on {self.host}:{self._port}: {reason} (choose another port, or 0 for any free one)"
            raise OSError(msg) from None
        sock.listen(512)
        self._socket = sock
        return sock

    def start(self) -> Self:
        """Start serving in a background thread; returns once the server and all its workers are ready."""
        sock = self._bind()
        self._server = _Server(self._config())
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                self.close()
                msg = "the local server failed to start; see the log above"
                raise RuntimeError(msg)
            threading.Event().wait(0.01)
        return self

    def serve_forever(self, on_ready: Callable[[LocalLogfire], None] | None = None) -> None:
        """Serve in this thread until SIGINT (Ctrl-C) or SIGTERM; ``on_ready`` is called once it is listening."""
        try:
            sock = self._bind()
            self._server = _Server(self._config())
            if on_ready is not None:
                self._state.on_ready = lambda: on_ready(self)
            self._server.run(sockets=[sock])
            if not self._server.started:
                msg = "the local server failed to start; see the log above"
                raise RuntimeError(msg)
        finally:
            self.close()

    def close(self) -> None:
        """Stop serving and release the workers and files (also after a failed start)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._pool.terminate()
        if self._socket is not None:
            self._socket.close()
        self._store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
