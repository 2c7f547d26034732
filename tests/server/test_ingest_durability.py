"""Property: ``kill -9`` of a real ``logfire-io serve --data-dir`` process at random points during ingest loses no
acknowledged batch and duplicates nothing; the restarted server serves every acknowledged span exactly once.

The oracle is the sender's own record of which batches got a 200 before the kill.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import Counter

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.server.otlp import ServeProcess, SpanSpec, post, query, trace_request

READ, WRITE = "pylf_v1_local_durability_read", "pylf_v1_local_durability_write"
NOW_NS = time.time_ns()
_runs = itertools.count()


def _batch_ids(run: int, round_: int, batch: int, size: int) -> list[bytes]:
    return [(run << 40 | round_ << 32 | batch << 12 | i).to_bytes(8, "big") for i in range(1, size + 1)]


def _send_until_killed(
    base_url: str, run: int, round_: int, size: int, acked: set, sent: set, first_ack: threading.Event
) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for batch in itertools.count():
            ids = _batch_ids(run, round_, batch, size)
            spans = [SpanSpec(trace_id=b"\x01" * 8 + i, span_id=i, name="d", start_ns=NOW_NS) for i in ids]
            sent.update(ids)
            try:
                answer = post(client, "/v1/traces", trace_request(spans).SerializeToString(), WRITE, compress=True)
            except httpx.TransportError:
                return
            if answer.status_code == 200:
                acked.add(tuple(ids))
                first_ack.set()


def _stored_span_ids(base_url: str) -> Counter[str]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        rows = query(client, READ, "SELECT span_id FROM records_all")
    assert len(rows) < 10_000
    return Counter(row["span_id"] for row in rows)


@settings(max_examples=int(os.environ.get("LOGFIRE_IO_KILL_EXAMPLES", "2")), deadline=None)
@given(kill_after=st.lists(st.floats(0.0, 0.8), min_size=1, max_size=2), batch_size=st.integers(1, 40))
def test_15_acknowledged_batches_survive_kill_9_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, kill_after: list[float], batch_size: int
) -> None:
    data_dir = tmp_path_factory.mktemp("durable")
    run = next(_runs)
    acked: set[tuple[bytes, ...]] = set()
    sent: set[bytes] = set()
    for round_, delay in enumerate(kill_after):
        server = ServeProcess(data_dir, READ, WRITE)
        try:
            _check(_stored_span_ids(server.base_url), acked, sent)  # what the previous kill left
            first_ack = threading.Event()
            sender = threading.Thread(
                target=_send_until_killed, args=(server.base_url, run, round_, batch_size, acked, sent, first_ack)
            )
            sender.start()
            assert first_ack.wait(timeout=60), "no batch was acknowledged"
            time.sleep(delay)  # the kill lands at a random point of the ingest
        finally:
            server.stop(signal.SIGKILL)
        sender.join(timeout=30)
    server = ServeProcess(data_dir, READ, WRITE)
    try:
        _check(_stored_span_ids(server.base_url), acked, sent)
    finally:
        server.stop(signal.SIGKILL)


def _check(stored: Counter[str], acked: set[tuple[bytes, ...]], sent: set[bytes]) -> None:
    for batch in acked:
        for span_id in batch:
            assert stored[span_id.hex()] == 1, f"acknowledged span {span_id.hex()} stored {stored[span_id.hex()]} times"
    assert all(count == 1 for count in stored.values()), "a span is stored twice"
    assert set(stored) <= {i.hex() for i in sent}, "rows that were never sent"
