"""Synthetic, realistic Logfire telemetry, generated column-wise (no Python loop per row).

The data is deterministic for a given ``seed``, ``end`` and size, and exercises what real projects hold and what
readers get wrong: traces of root and child spans with consistent ids, logs, the level mix of a real app,
exceptions with tracebacks through several files and functions, ``code.*`` attributes where the logfire SDK sets
them, HTTP, database and LLM attributes as nested JSON with dotted keys (and one key whose type varies), tags,
resource and scope attributes, pending spans, bursts of many rows on one microsecond, rows on round minutes and
hours, and gauge, sum and histogram metrics.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

import polars as pl
from logfire_io.schema import METRICS_SCHEMA, RECORDS_SCHEMA

__all__ = ["DEFAULT_END", "DEFAULT_SPAN", "synth_metrics", "synth_records"]

DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)
"""The fixed end of the synthetic window when none is given, so that tests see the same rows every run."""
DEFAULT_SPAN = timedelta(days=2)
"""Width of the synthetic window."""

_PROJECT_ID = "7b2c6f1e-4a4f-4c55-9d0c-2f1f6a3c9e10"
_SERVICES = ["api-gateway", "checkout", "billing-worker", "llm-assistant", "search"]
_ENVIRONMENTS = ["prod", "staging", "dev"]
_ENV_WEIGHTS = [0.7, 0.2, 0.1]
_SCOPES = [
    "opentelemetry.instrumentation.fastapi",
    "opentelemetry.instrumentation.sqlalchemy",
    "logfire.openai",
    "logfire",
]
_ROUTES = ["/api/users/{id}", "/api/orders", "/api/orders/{id}", "/health", "/api/search"]
_METHODS = ["GET", "GET", "POST", "GET", "PUT"]
_TABLES = ["users", "orders", "invoices", "sessions"]
_MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]
_COUNTRIES = ["USA", "GBR", "FRA", "DEU", "JPN"]
_NAMES = ["Ada", "Grace", "Linus", "Guido", "Ritchie", "Zoë", "Łukasz", "渡辺"]
_EXCEPTIONS = [
    ("ZeroDivisionError", "division by zero"),
    ("ValueError", "invalid literal for int() with base 10: 'abc'"),
    ("TimeoutError", "upstream did not answer within 5.0s"),
    ("KeyError", "'user_id'"),
]
_CODE_ROOT = "/srv/shop/"
"""The services' working directory: tracebacks show absolute paths, ``code.filepath`` is relative to it."""
_RAISED_IN = [  # the frame each of _EXCEPTIONS is raised in, below the call site
    ("app/services/pricing.py", "unit_price", 48, "return total / quantity"),
    ("app/api/params.py", "parse_int", 19, "return int(raw)"),
    (
        "app/clients/inventory.py",
        "InventoryClient.fetch",
        77,
        "raise TimeoutError(f'upstream did not answer within {self.timeout}s')",
    ),
    ("app/auth/session.py", "current_user", 31, "return request.session['user_id']"),
]
_TAG_CHOICES: list[list[str]] = [[], [], [], ["billing"], ["tag1", "tag2"], ["llm"], ["db", "slow"]]
_LEVELS = np.array([1, 5, 9, 10, 13, 17, 21], dtype=np.int32)
_LOG_LEVEL_WEIGHTS = [0.01, 0.12, 0.69, 0.03, 0.10, 0.04, 0.01]

# Row templates: which span_name/message/attributes a row gets.
_HTTP, _DB, _LLM, _LOG_USER, _BEWARE, _LOOKUP, _METRIC_SPAN, _OTEL_LOG = range(8)
# Where the code is: (template, code.filepath, code.function (the qualified name), code.lineno, source line).
# The logfire SDK records the first three on the spans and logs it creates (``logfire/_internal/stack_info.py``);
# OpenTelemetry's HTTP and database spans have none, but their exceptions' tracebacks still start in the handler
# or repository that made the call.
_CODE_SITES = [
    (_HTTP, "app/routes/users.py", "get_user", 34, "user = await load_user(user_id)"),
    (_HTTP, "app/routes/orders.py", "create_order", 58, "price = unit_price(order.total, order.quantity)"),
    (_HTTP, "app/routes/search.py", "search", 22, "hits = await index.query(q)"),
    (_DB, "app/db/repository.py", "Repository.fetch_one", 71, "row = await self.session.execute(statement)"),
    (_DB, "app/db/repository.py", "Repository.fetch_all", 88, "rows = await self.session.execute(statement)"),
    (
        _LLM,
        "app/llm/assistant.py",
        "Assistant.reply",
        112,
        "response = await self.client.chat.completions.create(**request)",
    ),
    (_LLM, "app/llm/summarise.py", "summarise_order", 40, "summary = await assistant.reply(prompt)"),
    (_LOG_USER, "app/auth/session.py", "login", 27, "logfire.info('user {user_id} logged in', user_id=user.id)"),
    (_BEWARE, "app/main.py", "check_config", 15, "logfire.warn('beware: {thing}', thing=thing)"),
    (_LOOKUP, "app/users/lookup.py", "lookup", 52, "logfire.info('lookup {name}', name=name)"),
    (_LOOKUP, "app/users/lookup.py", "UserDirectory.find", 90, "logfire.info('lookup {name}', name=name)"),
    (_METRIC_SPAN, "app/workers/batch.py", "process_batch", 63, "with logfire.span('process batch'):"),
    (_METRIC_SPAN, "app/workers/batch.py", "BatchWorker.run", 101, "with logfire.span('process batch'):"),
    (_OTEL_LOG, "app/cache.py", "warm_cache", 19, "logger.info('cache warmed')"),
]
_SDK_TEMPLATES = [_LLM, _LOG_USER, _BEWARE, _LOOKUP, _METRIC_SPAN, _OTEL_LOG]
"""Templates of the spans and logs the logfire SDK creates, which carry ``code.*`` attributes."""
_N_SITES = np.bincount([site[0] for site in _CODE_SITES], minlength=8)
_FIRST_SITE = np.concatenate([[0], np.cumsum(_N_SITES)[:-1]])  # _CODE_SITES is grouped by template, in order
_MINUTE_US = 60_000_000
_HOUR_US = 60 * _MINUTE_US


def _micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000) if value.tzinfo else int(value.replace(tzinfo=UTC).timestamp() * 1e6)


def _hex_ids(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    """``n`` random lowercase hex ids of ``nbytes`` bytes, built straight into an Arrow string buffer."""
    data = rng.integers(0, 256, size=n * nbytes, dtype=np.uint8).tobytes().hex().encode()
    offsets = np.arange(n + 1, dtype=np.int32) * (2 * nbytes)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _pick(options: list[str], index: np.ndarray) -> pl.Series:
    return pl.Series(options, dtype=pl.String).gather(index)


def _pick_where(options: list[str], index: np.ndarray, keep: np.ndarray) -> pl.Series:
    """``options[index]`` where ``keep``, else null: long strings are only copied into the rows that get them."""
    return pl.Series(options, dtype=pl.String).gather(pl.Series(pa.array(index, mask=~keep)))


def _traceback(site: tuple[int, str, str, int, str], exception: int) -> str:
    """A Python traceback from the call at ``site`` down to where ``_EXCEPTIONS[exception]`` is raised."""
    lines = ["Traceback (most recent call last):"]
    for path, function, lineno, source in (site[1:], _RAISED_IN[exception]):
        lines += [f'  File "{_CODE_ROOT}{path}", line {lineno}, in {function.rsplit(".", 1)[-1]}', f"    {source}"]
    return "\n".join([*lines, ": ".join(_EXCEPTIONS[exception])])


def _exception_event_tail(site: tuple[int, str, str, int, str], exception: int) -> str:
    """The exception span event after its timestamp, as the SDK records it (with the stack trace)."""
    kind, message = _EXCEPTIONS[exception]
    attributes = {
        "exception.type": kind,
        "exception.message": message,
        "exception.stacktrace": _traceback(site, exception),
        "exception.escaped": "False",
    }
    return '","attributes":' + json.dumps(attributes, separators=(",", ":"), ensure_ascii=False) + "}]"


_CODE_ATTRIBUTES = [  # open JSON objects: the SDK puts them first, {**stack_info, **attributes}
    json.dumps({"code.filepath": path, "code.lineno": lineno, "code.function": function}, separators=(",", ":"))[:-1]
    for _, path, function, lineno, _ in _CODE_SITES
]
_TRACEBACKS = [_traceback(site, e) for site in _CODE_SITES for e in range(len(_EXCEPTIONS))]
_EVENT_TAILS = [_exception_event_tail(site, e) for site in _CODE_SITES for e in range(len(_EXCEPTIONS))]


def _window(end: datetime | None, span: timedelta) -> tuple[int, int]:
    end_us = _micros(end or DEFAULT_END)
    return end_us - int(span.total_seconds() * 1_000_000), end_us


def _trace_layout(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ``n`` rows into traces: returns (trace index per row, position in trace, first row per trace)."""
    sizes = np.clip(rng.geometric(0.18, size=n // 2 + 2), 1, 40)
    ends = np.cumsum(sizes)
    n_traces = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:n_traces].copy()
    sizes[-1] -= int(ends[n_traces - 1] - n)
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    trace_of_row = np.repeat(np.arange(n_traces), sizes)
    return trace_of_row, np.arange(n) - firsts[trace_of_row], firsts


def _root_starts(rng: np.random.Generator, n_traces: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Trace start times: uniform, with some on round minutes/hours and some in single-microsecond bursts."""
    starts = rng.integers(lo, hi - 10_000_000, size=n_traces)
    roll = rng.random(n_traces)
    starts = np.where(roll < 0.03, starts - starts % _MINUTE_US, starts)
    starts = np.where(roll > 0.99, starts - starts % _HOUR_US, starts)
    n_anchors = max(1, n_traces // 2_000)
    anchors = rng.integers(lo, hi - 10_000_000, size=n_anchors)
    in_burst = (roll > 0.03) & (roll < 0.05)
    starts = np.where(in_burst, anchors[rng.integers(0, n_anchors, size=n_traces)], starts)
    return np.maximum(starts, lo), in_burst


def synth_records(n: int, *, seed: int = 0, end: datetime | None = None, span: timedelta = DEFAULT_SPAN) -> pa.Table:
    """Generate ``n`` rows of ``records_all`` in ``[end - span, end)``, sorted by ``start_timestamp``.

    ``records_all`` holds pending spans too (about 0.4 % of the rows here), so ``records`` has a few fewer rows.
    Spans and logs the logfire SDK creates carry ``code.filepath``/``code.lineno``/``code.function`` in their
    attributes; exceptions come with Python tracebacks through several files and functions.

    Parameters
    ----------
    n
        Number of rows.
    seed
        Seed of the random generator: the same seed, ``n``, ``end`` and ``span`` give the same table.
    end
        End of the window (exclusive); defaults to :data:`DEFAULT_END`.
    span
        Width of the window.
    """
    if n < 0:
        msg = f"`n` must be >= 0, got {n!r}"
        raise ValueError(msg)
    if n == 0:
        return RECORDS_SCHEMA.empty_table()
    rng = np.random.default_rng(seed)
    lo, hi = _window(end, span)
    trace_of_row, pos, firsts = _trace_layout(rng, n)
    n_traces = len(firsts)
    is_root = pos == 0

    # Per-trace facts.
    root_start, burst_trace = _root_starts(rng, n_traces, lo, hi)
    root_dur = np.minimum(rng.lognormal(np.log(40_000), 1.2, size=n_traces).astype(np.int64), 9_000_000)
    service_t = rng.integers(0, len(_SERVICES), size=n_traces)
    env_t = rng.choice(len(_ENVIRONMENTS), size=n_traces, p=_ENV_WEIGHTS)
    route_t = rng.integers(0, len(_ROUTES), size=n_traces)

    # Per-row timing: children start inside the root span and end before it.
    frac = rng.random(n)
    offset = np.where(is_root | burst_trace[trace_of_row], 0, (frac * 0.9 * root_dur[trace_of_row]).astype(np.int64))
    start = root_start[trace_of_row] + offset
    child_dur = (rng.random(n) * (root_dur[trace_of_row] - offset)).astype(np.int64)

    # Kinds and parents.
    roll = rng.random(n)
    kind_code = np.where(is_root, 0, np.where(roll < 0.35, 1, np.where(roll > 0.995, 2, 0)))  # span/log/pending
    prev_is_span = np.concatenate([[False], (kind_code[:-1] != 1) & (offset[:-1] <= offset[1:])])
    parent_row = np.where(~is_root & prev_is_span & (rng.random(n) < 0.5), np.arange(n) - 1, firsts[trace_of_row])
    is_log = kind_code == 1
    end_us = np.where(is_log, start, start + np.where(is_root, root_dur[trace_of_row], child_dur))

    # Templates: roots follow the service, children mix database calls, LLM calls and logs.
    service_row = service_t[trace_of_row]
    template = np.select(
        [
            is_root & (service_row == 3),
            is_root,
            is_log & (roll < 0.03),
            is_log & (roll < 0.06),
            is_log & (roll < 0.08),
            is_log,
            (service_row == 3) & (roll > 0.7),
            roll > 0.9,
        ],
        [_LLM, _HTTP, _BEWARE, _LOOKUP, _OTEL_LOG, _LOG_USER, _LLM, _METRIC_SPAN],
        default=_DB,
    )
    levels = np.where(is_log, _LEVELS[rng.choice(len(_LEVELS), size=n, p=_LOG_LEVEL_WEIGHTS)], 9).astype(np.int32)
    status = np.where(template == _HTTP, rng.choice([200, 200, 200, 201, 204, 404, 422, 500], size=n), 0)
    is_exc = (~is_log & (rng.random(n) < 0.02)) | (status == 500)
    levels = np.where(is_exc, 17, np.where((status >= 400) & (status < 500), 13, levels)).astype(np.int32)
    exc_kind = rng.integers(0, len(_EXCEPTIONS), size=n)

    # Put rows in time order now, while they are numbers: sorting the finished table would copy every string.
    order = np.argsort(start, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(n)
    parent_row = rank[parent_row[order]]
    trace_of_row, is_root, start, end_us, kind_code, is_log = (
        a[order] for a in (trace_of_row, is_root, start, end_us, kind_code, is_log)
    )
    template, levels, status, is_exc, exc_kind, service_row = (
        a[order] for a in (template, levels, status, is_exc, exc_kind, service_row)
    )
    # Call sites come from their own random stream, so that every other column stays as it was without them.
    site = _FIRST_SITE[template] + np.random.default_rng([seed, 1]).integers(0, 1 << 20, size=n) % _N_SITES[template]
    has_code = np.isin(template, _SDK_TEMPLATES)
    combo = site * len(_EXCEPTIONS) + exc_kind
    trace_ids = _hex_ids(rng, n_traces, 16).take(pa.array(trace_of_row))
    span_ids = _hex_ids(rng, n, 8)
    parent_ids = span_ids.take(pa.array(parent_row, mask=is_root))

    h = pl.DataFrame(
        {
            "template": template,
            "route": _pick(_ROUTES, route_t[trace_of_row]),
            "method": _pick(_METHODS, route_t[trace_of_row]),
            "status": status,
            "user_id": rng.integers(1, 5_000, size=n),
            "table": _pick(_TABLES, rng.integers(0, len(_TABLES), size=n)),
            "rows": rng.integers(0, 500, size=n),
            "model": _pick(_MODELS, rng.integers(0, len(_MODELS), size=n)),
            "tokens_in": rng.integers(10, 4_000, size=n),
            "tokens_out": rng.integers(1, 1_000, size=n),
            "cost": np.round(rng.random(n) * 0.05, 6),
            "name": _pick(_NAMES, rng.integers(0, len(_NAMES), size=n)),
            "country": _pick(_COUNTRIES, rng.integers(0, len(_COUNTRIES), size=n)),
            "year": rng.integers(1950, 2005, size=n),
            "amount": np.round(rng.random(n) * 100, 2),
            "user_as_text": rng.random(n) < 0.01,
            "exc_type": _pick([e[0] for e in _EXCEPTIONS], exc_kind),
            "exc_msg": _pick([e[1] for e in _EXCEPTIONS], exc_kind),
            "is_exc": is_exc,
            "start": start,
            "code": _pick_where(_CODE_ATTRIBUTES, site, has_code),
            "stack": _pick_where(_TRACEBACKS, combo, is_exc),
            "event_tail": _pick_where(_EVENT_TAILS, combo, is_exc),
        }
    )
    text = pl.col
    user_json = (
        pl.when(text("user_as_text"))
        .then(pl.concat_str([pl.lit('"u-'), text("user_id").cast(pl.String), pl.lit('"')]))
        .otherwise(text("user_id").cast(pl.String))
    )
    path = text("route").str.replace(r"\{id\}", text("user_id").cast(pl.String))
    by_template: dict[int, tuple[pl.Expr, pl.Expr, pl.Expr]] = {
        _HTTP: (
            pl.concat_str([text("method"), pl.lit(" "), text("route")]),
            pl.concat_str([text("method"), pl.lit(" "), path]),
            pl.concat_str(
                [
                    pl.lit('{"http.method":"'),
                    text("method"),
                    pl.lit('","http.route":"'),
                    text("route"),
                    pl.lit('","http.response.status_code":'),
                    text("status").cast(pl.String),
                    pl.lit(',"url.full":"https://shop.example.com'),
                    path,
                    pl.lit('","user":{"id":'),
                    user_json,
                    pl.lit(',"plan":"pro"}}'),
                ]
            ),
        ),
        _DB: (
            pl.concat_str([pl.lit("SELECT "), text("table")]),
            pl.concat_str([pl.lit("SELECT "), text("table")]),
            pl.concat_str(
                [
                    pl.lit('{"db.system":"postgresql","db.statement":"SELECT * FROM '),
                    text("table"),
                    pl.lit(' WHERE id = $1","db.rows":'),
                    text("rows").cast(pl.String),
                    pl.lit("}"),
                ]
            ),
        ),
        _LLM: (
            pl.lit("Chat Completion with {request_data[model]!r}"),
            pl.concat_str([pl.lit("Chat Completion with '"), text("model"), pl.lit("'")]),
            pl.concat_str(
                [
                    text("code"),
                    pl.lit(',"gen_ai.system":"openai","gen_ai.request.model":"'),
                    text("model"),
                    pl.lit('","gen_ai.usage.input_tokens":'),
                    text("tokens_in").cast(pl.String),
                    pl.lit(',"gen_ai.usage.output_tokens":'),
                    text("tokens_out").cast(pl.String),
                    pl.lit(',"operation.cost":'),
                    text("cost").cast(pl.String),
                    pl.lit(',"request_data":{"model":"'),
                    text("model"),
                    pl.lit('","temperature":0.2}}'),
                ]
            ),
        ),
        _LOG_USER: (
            pl.lit("user {user_id} logged in"),
            pl.concat_str([pl.lit("user "), text("user_id").cast(pl.String), pl.lit(" logged in")]),
            pl.concat_str([text("code"), pl.lit(',"user_id":'), user_json, pl.lit("}")]),
        ),
        _BEWARE: (
            pl.lit("beware: {thing}"),
            pl.lit("beware: bad"),
            pl.concat_str([text("code"), pl.lit(',"thing":"bad"}')]),
        ),
        _LOOKUP: (
            pl.lit("lookup {name}"),
            pl.concat_str([pl.lit("lookup "), text("name")]),
            pl.concat_str(
                [
                    text("code"),
                    pl.lit(',"result":{"name":"'),
                    text("name"),
                    pl.lit('","country_code":"'),
                    text("country"),
                    pl.lit('","dob":"'),
                    text("year").cast(pl.String),
                    pl.lit('-03-14"}}'),
                ]
            ),
        ),
        _METRIC_SPAN: (
            pl.lit("process batch"),
            pl.lit("process batch"),
            pl.concat_str(
                [
                    text("code"),
                    pl.lit(',"logfire.metrics":{"my_amount":{"details":[{"attributes":{},"total":'),
                    text("amount").cast(pl.String),
                    pl.lit('}],"total":'),
                    text("amount").cast(pl.String),
                    pl.lit("}}}"),
                ]
            ),
        ),
        _OTEL_LOG: (pl.lit("otel log"), pl.lit("cache warmed"), pl.concat_str([text("code"), pl.lit("}")])),
    }

    def choose(slot: int) -> pl.Expr:
        expr: Any = pl.when(text("template") == _HTTP).then(by_template[_HTTP][slot])
        for code, parts in by_template.items():
            if code != _HTTP:
                expr = expr.when(text("template") == code).then(parts[slot])
        return expr.otherwise(pl.lit(None, pl.String))

    exc_event = pl.concat_str(
        [
            pl.lit('[{"name":"exception","timestamp":"'),
            pl.from_epoch(text("start"), time_unit="us").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
            text("event_tail"),
        ]
    )
    built = h.select(
        span_name=choose(0),
        message=choose(1),
        attributes=choose(2),
        exception_type=pl.when(text("is_exc")).then(text("exc_type")),
        exception_message=pl.when(text("is_exc")).then(text("exc_msg")),
        exception_stacktrace=text("stack"),
        otel_events=pl.when(text("is_exc")).then(exc_event).otherwise(pl.lit("[]")),
        otel_status_message=pl.when(text("is_exc")).then(
            pl.concat_str([text("exc_type"), pl.lit(": "), text("exc_msg")])
        ),
        log_body=pl.when(text("template") == _OTEL_LOG).then(
            pl.when(text("user_as_text") | (text("rows") % 2 == 0))
            .then(pl.lit("cache warmed"))
            .otherwise(pl.lit('{"event":"cache.warm","entries":128}'))
        ),
        http_response_status_code=pl.when(text("template") == _HTTP).then(text("status").cast(pl.Int32)),
        http_method=pl.when(text("template") == _HTTP).then(text("method")),
        http_route=pl.when(text("template") == _HTTP).then(text("route")),
        url_full=pl.when(text("template") == _HTTP).then(pl.concat_str([pl.lit("https://shop.example.com"), path])),
        url_path=pl.when(text("template") == _HTTP).then(path),
        url_query=pl.when((text("template") == _HTTP) & (text("route") == "/api/search")).then(pl.lit("q=shoes")),
    )

    # Per (service, environment) resource facts.
    combo = service_row * len(_ENVIRONMENTS) + env_t[trace_of_row]
    resources = [
        f'{{"service.name":"{s}","service.version":"1.{i}.0","deployment.environment.name":"{e}",'
        f'"service.instance.id":"{s}-{e}-0","process.pid":{1000 + i},"telemetry.sdk.name":"opentelemetry",'
        f'"telemetry.sdk.language":"python","telemetry.sdk.version":"1.38.0","host.name":"{e}-host-{i}"}}'
        for i, s in enumerate(_SERVICES)
        for e in _ENVIRONMENTS
    ]
    scope_of_template = np.array([0, 1, 2, 3, 3, 3, 3, 3])
    scope_row = np.where(is_log, 3, scope_of_template[template])
    tag_options = pl.Series(_TAG_CHOICES, dtype=pl.List(pl.String))
    otel_status = np.where(is_exc, "ERROR", np.where(rng.random(n) < 0.2, "OK", "UNSET"))

    columns: dict[str, pa.Array | np.ndarray | pl.Series] = {
        "start_timestamp": start,
        "end_timestamp": end_us,
        "duration": pa.array(np.where(is_log, np.nan, (end_us - start) / 1e6), mask=is_log),
        "trace_id": trace_ids,
        "span_id": span_ids,
        "parent_span_id": parent_ids,
        "kind": _pick(["span", "log", "pending_span"], kind_code),
        "level": levels,
        "tags": tag_options.gather(rng.integers(0, len(_TAG_CHOICES), size=n)),
        "is_exception": is_exc,
        "otel_status_code": otel_status,
        "otel_links": _pick(["[]"], np.zeros(n, dtype=np.int64)),
        "otel_scope_name": _pick(_SCOPES, scope_row),
        "otel_scope_version": _pick(["0.58b0", "0.58b0", "5.4.0", "5.4.0"], scope_row),
        "otel_scope_attributes": _pick(["{}"], np.zeros(n, dtype=np.int64)),
        "otel_resource_attributes": _pick(resources, combo),
        "service_name": _pick(_SERVICES, service_row),
        "service_version": _pick([f"1.{i}.0" for i in range(len(_SERVICES))], service_row),
        "service_instance_id": _pick([f"{s}-{e}-0" for s in _SERVICES for e in _ENVIRONMENTS], combo),
        "service_namespace": _pick(["shop"], np.zeros(n, dtype=np.int64)),
        "process_pid": (1000 + service_row).astype(np.int32),
        "deployment_environment": _pick(_ENVIRONMENTS, env_t[trace_of_row]),
        "telemetry_sdk_name": _pick(["opentelemetry"], np.zeros(n, dtype=np.int64)),
        "telemetry_sdk_language": _pick(["python"], np.zeros(n, dtype=np.int64)),
        "telemetry_sdk_version": _pick(["1.38.0"], np.zeros(n, dtype=np.int64)),
        "created_at": end_us + 250_000,
        "day": (start // 86_400_000_000).astype(np.int32),
        "project_id": _pick([_PROJECT_ID], np.zeros(n, dtype=np.int64)),
        "attributes_json_schema": _pick(
            ['{"type":"object","properties":{"user_id":{}}}'], np.zeros(n, dtype=np.int64)
        ).set(pl.Series(template != _LOG_USER), None),
    }
    frame = built.hstack(
        [
            pl.Series(k, v) if not isinstance(v, pl.Series) else v.alias(k)
            for k, v in columns.items()
            if not isinstance(v, pa.Array)
        ]
    )
    table = frame.to_arrow()
    for name, value in columns.items():
        if isinstance(value, pa.Array):
            table = table.append_column(name, value)
    return _conform(table, RECORDS_SCHEMA)


_METRIC_SERIES = [
    # name, type, unit, description, temporality, monotonic, attributes
    ("system.cpu.time", "sum", "s", "CPU time", "cumulative", True, '{"cpu":0,"state":"user"}'),
    ("system.cpu.utilization", "gauge", "1", "CPU utilization", None, None, '{"cpu":0}'),
    ("process.runtime.cpython.memory", "gauge", "By", "Memory in use", None, None, '{"type":"rss"}'),
    (
        "http.server.requests",
        "sum",
        "{request}",
        "Requests served",
        "delta",
        True,
        '{"http.route":"/api/orders","http.method":"GET"}',
    ),
    (
        "http.server.duration",
        "exponential_histogram",
        "ms",
        "Request duration",
        "delta",
        None,
        '{"http.route":"/api/users/{id}","http.method":"GET"}',
    ),
    ("queue.depth", "sum", "{item}", "Items waiting", "cumulative", False, '{"queue":"emails"}'),
]
_EXP_SCALE = 3
"""Scale of the exponential histograms: buckets grow by 2**(1/8). The logfire SDK aggregates every histogram
as an exponential one (``MetricsOptions.DEFAULT_VIEWS``) and lowers the scale from 20 until the observed range
fits 160 buckets; request durations spanning about 12 doublings end at 3. The ``metric_type`` string
``exponential_histogram`` is UNVERIFIED."""


def _exponential_histograms(
    rng: np.random.Generator, observations: np.ndarray
) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Bucket ``observations[i]`` log-normal durations (ms) per row as OpenTelemetry exponential histograms.

    Returns the positive bucket counts (a list per row, NULL where a row has no observations), their offsets,
    and each row's minimum, maximum and sum (NaN where it has none). Bucket ``k`` holds ``(b**k, b**(k+1)]``.
    """
    rows = len(observations)
    owner = np.repeat(np.arange(rows), observations)
    values = rng.lognormal(np.log(60.0), 1.0, size=len(owner))
    index = np.ceil(np.log2(values) * 2**_EXP_SCALE).astype(np.int64) - 1
    low = np.full(rows, np.iinfo(np.int64).max)
    np.minimum.at(low, owner, index)
    high = np.full(rows, np.iinfo(np.int64).min)
    np.maximum.at(high, owner, index)
    lengths = np.where(observations > 0, high - low + 1, 0)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    counts = np.zeros(offsets[-1], dtype=np.int32)
    np.add.at(counts, offsets[owner] + index - low[owner], 1)
    empty = observations == 0
    extremes = [np.full(rows, np.inf), np.full(rows, -np.inf), np.zeros(rows)]
    np.minimum.at(extremes[0], owner, values)
    np.maximum.at(extremes[1], owner, values)
    np.add.at(extremes[2], owner, values)
    smallest, largest, total = (np.where(empty, np.nan, x) for x in extremes)
    bucket_lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(counts), mask=pa.array(empty))
    return bucket_lists, pa.array(np.where(empty, 0, low).astype(np.int32), mask=empty), smallest, largest, total


def synth_metrics(n: int, *, seed: int = 0, end: datetime | None = None, span: timedelta = DEFAULT_SPAN) -> pa.Table:
    """Generate ``n`` rows of ``metrics`` in ``[end - span, end)``, sorted by ``recorded_timestamp``.

    Every series reports on a fixed grid of whole seconds, so many rows share one timestamp.
    """
    if n == 0:
        return METRICS_SCHEMA.empty_table()
    rng = np.random.default_rng(seed + 1)
    lo, hi = _window(end, span)
    n_series = len(_METRIC_SERIES) * len(_SERVICES)
    series = np.arange(n) % n_series
    step = np.arange(n) // n_series
    steps = max(1, int(np.ceil(n / n_series)))
    interval = max(1_000_000, ((hi - lo) // steps) // 1_000_000 * 1_000_000)
    recorded = lo + step * interval
    kind = series % len(_METRIC_SERIES)
    service = series // len(_METRIC_SERIES)
    mtype = np.array([s[1] for s in _METRIC_SERIES])[kind]
    is_hist = mtype == "exponential_histogram"
    observations = np.where(is_hist, rng.poisson(50, size=n) + 1, 0)
    bucket_lists, bucket_offsets, hist_min, hist_max, hist_sum = _exponential_histograms(rng, observations)
    scalar = np.where(
        mtype == "gauge",
        rng.random(n),
        np.where(np.array([s[5] for s in _METRIC_SERIES])[kind] == True, step * 1.5, 0),  # noqa: E712
    ) + rng.random(n)
    env = rng.choice(len(_ENVIRONMENTS), size=n, p=_ENV_WEIGHTS)
    # The SDK sends an empty negative side (durations are positive), not a missing one.
    no_buckets = pa.ListArray.from_arrays(
        pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.int32()), mask=pa.array(~is_hist)
    )

    def series_attr(i: int) -> pl.Series:
        return _pick([str(s[i]) if s[i] is not None else None for s in _METRIC_SERIES], kind)  # type: ignore[misc]

    table = pl.DataFrame(
        {
            "recorded_timestamp": recorded,
            "start_timestamp": recorded - interval,
            "metric_name": series_attr(0),
            "metric_type": mtype,
            "unit": series_attr(2),
            "metric_description": series_attr(3),
            "aggregation_temporality": series_attr(4),
            "is_monotonic": pl.Series([s[5] for s in _METRIC_SERIES], dtype=pl.Boolean).gather(kind),
            "scalar_value": pl.Series(np.where(is_hist, np.nan, scalar)).fill_nan(None),
            "histogram_min": pl.Series(hist_min).fill_nan(None),
            "histogram_max": pl.Series(hist_max).fill_nan(None),
            "histogram_sum": pl.Series(np.round(hist_sum, 3)).fill_nan(None),
            "histogram_count": pl.Series(np.where(is_hist, observations, -1)).replace(-1, None).cast(pl.Int32),
            "exp_histogram_scale": pl.Series(np.where(is_hist, _EXP_SCALE, -1)).replace(-1, None).cast(pl.Int32),
            "exp_histogram_zero_count": pl.Series(np.where(is_hist, 0, -1)).replace(-1, None).cast(pl.Int32),
            "exp_histogram_zero_threshold": pl.Series(np.where(is_hist, 0.0, np.nan)).fill_nan(None),
            "exp_histogram_negative_bucket_counts_offset": pl.Series(np.where(is_hist, 0, -1))
            .replace(-1, None)
            .cast(pl.Int32),
            "exemplars": _pick(["[]"], np.zeros(n, dtype=np.int64)),
            "attributes": series_attr(6),
            "otel_scope_name": _pick(["opentelemetry.instrumentation.system_metrics"], np.zeros(n, dtype=np.int64)),
            "otel_scope_version": _pick(["0.58b0"], np.zeros(n, dtype=np.int64)),
            "otel_scope_attributes": _pick(["{}"], np.zeros(n, dtype=np.int64)),
            "otel_resource_attributes": _pick(
                [
                    f'{{"service.name":"{s}","deployment.environment.name":"{e}"}}'
                    for s in _SERVICES
                    for e in _ENVIRONMENTS
                ],
                service * len(_ENVIRONMENTS) + env,
            ),
            "service_name": _pick(_SERVICES, service),
            "service_namespace": _pick(["shop"], np.zeros(n, dtype=np.int64)),
            "service_version": _pick([f"1.{i}.0" for i in range(len(_SERVICES))], service),
            "service_instance_id": _pick([f"{s}-0" for s in _SERVICES], service),
            "process_pid": (1000 + service).astype(np.int32),
            "deployment_environment": _pick(_ENVIRONMENTS, env),
            "telemetry_sdk_name": _pick(["opentelemetry"], np.zeros(n, dtype=np.int64)),
            "telemetry_sdk_language": _pick(["python"], np.zeros(n, dtype=np.int64)),
            "telemetry_sdk_version": _pick(["1.38.0"], np.zeros(n, dtype=np.int64)),
            "created_at": recorded + 1_000_000,
            "day": (recorded // 86_400_000_000).astype(np.int32),
            "project_id": _pick([_PROJECT_ID], np.zeros(n, dtype=np.int64)),
        }
    ).to_arrow()
    table = table.append_column("exp_histogram_positive_bucket_counts", bucket_lists)
    table = table.append_column("exp_histogram_positive_bucket_counts_offset", bucket_offsets)
    table = table.append_column("exp_histogram_negative_bucket_counts", no_buckets)
    return _conform(table, METRICS_SCHEMA).sort_by("recorded_timestamp")


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Order, type and null-fill ``table``'s columns to ``schema`` (generated columns are all valid casts)."""
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if pa.types.is_timestamp(field.type) and pa.types.is_integer(column.type):
                column = column.cast(pa.int64()).cast(field.type)
            elif pa.types.is_date32(field.type) and pa.types.is_integer(column.type):
                column = column.cast(pa.int32()).cast(field.type)
            arrays.append(column.cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
