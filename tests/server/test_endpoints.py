"""Request validation, auth, negotiation and time-window semantics of the local server's endpoints."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow as pa
import pytest

from logfire_io.server import LocalLogfire
from tests.helpers import make_records

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Rows at T0 - 1 µs, T0, T0 + 1 s, T0 + 2 s (exactly on the upper bound), T0 + 3 s.
EDGE_TIMES = [
    T0 - timedelta(microseconds=1),
    T0,
    T0 + timedelta(seconds=1),
    T0 + timedelta(seconds=2),
    T0 + timedelta(seconds=3),
]


def _v2(http: httpx.Client, **body: object) -> httpx.Response:
    return http.post("/v2/query", json={"min_timestamp": "2020-01-01T00:00:00Z", **body})


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("wrong", 401),
        ("Bearer wrong", 401),
        ("{token}", 200),
        ("Bearer {token}", 200),
        ("bearer {token}", 200),
    ],
)
def test_auth(server: LocalLogfire, authorization: str | None, status: int) -> None:
    headers = {} if authorization is None else {"authorization": authorization.format(token=server.read_token)}
    response = httpx.post(
        f"{server.base_url}/v2/query",
        json={"sql": "SELECT 1", "min_timestamp": "2020-01-01T00:00:00Z"},
        headers=headers,
    )
    assert response.status_code == status
    if status == 401:
        assert "token" in response.json()["detail"]
        assert server.read_token not in response.text


@pytest.mark.parametrize("limit", [0, -1, 10_001, "ten", True])
def test_limit_out_of_range_is_422(http: httpx.Client, limit: object) -> None:
    response = _v2(http, sql="SELECT 1", limit=limit)
    assert response.status_code == 422
    assert "`limit`" in response.json()["detail"]


def test_default_limits(http: httpx.Client) -> None:
    assert len(_v2(http, sql="SELECT span_id FROM records").json()["data"]) == 100
    v1 = http.get("/v1/query", params={"sql": "SELECT span_id FROM records", "json_rows": "true"})
    assert len(v1.json()["rows"]) == 500


def test_limit_takes_priority_over_sql_limit(http: httpx.Client) -> None:
    assert len(_v2(http, sql="SELECT span_id FROM records LIMIT 50", limit=10).json()["data"]) == 10
    assert len(_v2(http, sql="SELECT span_id FROM records LIMIT 5", limit=10).json()["data"]) == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sql": "SELECT 1"}, "min_timestamp"),
        ({"min_timestamp": "2020-01-01T00:00:00Z"}, "sql"),
        ({"sql": "  ", "min_timestamp": "2020-01-01T00:00:00Z"}, "sql"),
        ({"sql": "SELECT 1", "min_timestamp": "yesterday"}, "min_timestamp"),
        (
            {"sql": "SELECT 1", "min_timestamp": "2021-01-02T00:00:00Z", "max_timestamp": "2021-01-01T00:00:00Z"},
            "max_timestamp",
        ),
        ({"sql": "SELECT 1", "min_timestamp": "2020-01-01T00:00:00Z", "timezone": "Mars/Olympus"}, "timezone"),
        (
            {"sql": "SELECT 1", "min_timestamp": "2020-01-01T00:00:00Z", "deployment_environment": [1]},
            "deployment_environment",
        ),
    ],
)
def test_invalid_request_names_the_field(http: httpx.Client, body: dict, field: str) -> None:
    response = http.post("/v2/query", json=body)
    assert response.status_code == 422
    assert f"`{field}`" in response.json()["detail"]


def test_unknown_keys_are_ignored(http: httpx.Client) -> None:
    response = _v2(http, sql="SELECT 1 AS one", include_schema=True, explain=False, something_new={"x": 1})
    assert response.json()["data"] == [{"one": 1}]


def test_bad_sql_is_400_with_detail(http: httpx.Client) -> None:
    response = _v2(http, sql="SELEC nope")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert "detail" in response.json()


def test_problem_json_when_preferred(http: httpx.Client) -> None:
    response = http.post(
        "/v2/query",
        json={"sql": "SELECT nope FROM records", "min_timestamp": "2020-01-01T00:00:00Z"},
        headers={"accept": "application/json, application/problem+json;q=0.9"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert problem["retryable"] is False
    assert "nope" in problem["error_details"]["detail"]


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv; charset=utf-8"),
        ("text/csv;q=0.5, application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.stream"),
        ("application/json;q=0.1, text/csv;q=0.9", "text/csv; charset=utf-8"),
        ("text/html, */*;q=0.8", "application/json"),
    ],
)
def test_content_negotiation(server: LocalLogfire, accept: str | None, media: str) -> None:
    headers = {"authorization": server.read_token} | ({"accept": accept} if accept else {})
    response = httpx.post(
        f"{server.base_url}/v2/query",
        json={"sql": "SELECT 1 AS one", "min_timestamp": "2020-01-01T00:00:00Z"},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == media


def test_unacceptable_accept_is_406(http: httpx.Client) -> None:
    response = http.post(
        "/v2/query", json={"sql": "SELECT 1", "min_timestamp": "2020-01-01T00:00:00Z"}, headers={"accept": "text/html"}
    )
    assert response.status_code == 406


def test_gzip_when_accepted(server: LocalLogfire) -> None:
    headers = {"authorization": server.read_token, "accept-encoding": "gzip"}
    body = {"sql": "SELECT * FROM records", "min_timestamp": "2020-01-01T00:00:00Z", "limit": 2000}
    with httpx.stream("POST", f"{server.base_url}/v2/query", json=body, headers=headers) as response:
        assert response.headers["content-encoding"] == "gzip"
        raw = b"".join(response.iter_raw())
    assert gzip.decompress(raw).startswith(b'{"schema"')


def test_explain_adds_plans(http: httpx.Client) -> None:
    body = _v2(http, sql="SELECT count(*) FROM records", explain=True).json()
    for key in ("logical_plan", "physical_plan", "physical_plan_with_metrics"):
        assert isinstance(body[key], str)
        assert body[key]


def test_deployment_environment_filter(http: httpx.Client) -> None:
    sql = "SELECT DISTINCT deployment_environment AS e FROM records"
    assert {r["e"] for r in _v2(http, sql=sql, deployment_environment=["prod"]).json()["data"]} == {"prod"}
    assert {r["e"] for r in _v2(http, sql=sql, deployment_environment="staging").json()["data"]} == {"staging"}


def test_timezone_sets_session_zone(http: httpx.Client) -> None:
    body = _v2(http, sql="SELECT now() AS n", timezone="Europe/Paris").json()
    assert body["schema"]["fields"][0]["data_type"] == {"Timestamp": ["Nanosecond", "Europe/Paris"]}


def test_metadata_endpoints(http: httpx.Client) -> None:
    token_info = http.get("/v1/read-token-info").json()
    assert token_info["organization_name"]
    assert token_info["project_name"]
    info = http.get("/v1/info").json()
    assert set(info) == {"project_name", "project_url"}
    tables = {t["name"]: t["schema"] for t in http.get("/v1/schemas").json()["tables"]}
    assert tables["records"]["start_timestamp"] == {
        "data_type": "TIMESTAMP WITH TIME ZONE",
        "nullable": False,
        "description": "",
    }


@pytest.fixture(scope="module", params=["[)", "[]", "(]", "()"])
def edge_server(request: pytest.FixtureRequest) -> Iterator[LocalLogfire]:
    with LocalLogfire(records=make_records(EDGE_TIMES), workers=1, bounds=request.param) as srv:
        yield srv


def test_window_bounds_semantics(edge_server: LocalLogfire) -> None:
    bounds = edge_server._state.bounds
    body = {
        "sql": "SELECT start_timestamp FROM records ORDER BY 1",
        "min_timestamp": T0.isoformat(),
        "max_timestamp": (T0 + timedelta(seconds=2)).isoformat(),
    }
    headers = {"authorization": edge_server.read_token, "accept": "application/vnd.apache.arrow.stream"}
    response = httpx.post(f"{edge_server.base_url}/v2/query", json=body, headers=headers)
    got = pa.ipc.open_stream(response.content).read_all().column(0).to_pylist()
    expected = [
        t
        for t in EDGE_TIMES[1:4]
        if (t > T0 or bounds[0] == "[") and (t < T0 + timedelta(seconds=2) or bounds[1] == "]")
    ]
    assert got == expected


def test_v1_accepts_naive_and_offset_timestamps(edge_server: LocalLogfire) -> None:
    def count(min_timestamp: str, max_timestamp: str) -> int:
        params = {
            "sql": "SELECT count(*) AS n FROM records",
            "json_rows": "true",
            "min_timestamp": min_timestamp,
            "max_timestamp": max_timestamp,
        }
        headers = {"authorization": edge_server.read_token}
        return httpx.get(f"{edge_server.base_url}/v1/query", params=params, headers=headers).json()["rows"][0]["n"]

    utc = count("2026-03-01T12:00:01Z", "2026-03-01T12:00:03.5Z")
    assert utc == (3 if edge_server._state.bounds[0] == "[" else 2)
    assert count("2026-03-01T12:00:01", "2026-03-01T13:00:03.5+01:00") == utc  # naive means UTC


def test_rate_limit_answers_429_with_retry_after() -> None:
    with LocalLogfire(demo_rows=100, workers=1, rate_limit=1.0) as srv:
        headers = {"authorization": srv.read_token}
        body = {"sql": "SELECT 1", "min_timestamp": "2020-01-01T00:00:00Z"}
        statuses = [httpx.post(f"{srv.base_url}/v2/query", json=body, headers=headers) for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert statuses[0].status_code == 200
    assert limited
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert all(r.json()["detail"] == "rate limit exceeded" for r in limited)
