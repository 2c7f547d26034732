"""Issue 13: read tokens are cleaned, checked before any request, and never shown in any encoding."""

from __future__ import annotations

import base64
import traceback
from urllib.parse import quote, quote_plus

import orjson
import pytest

import logfire_io
from logfire_io import AuthenticationError, ConfigurationError, LogfireQueryClient, QueryHTTPError, Retry
from logfire_io._cli import main
from logfire_io.server import LocalLogfire
from tests.client.conftest import Answer, Hostile

# Characters that every encoding below writes differently: quotes, a backslash, URL and base64 specials.
TOKEN = "pylf_v1_local_Sec+ret/Tok=en%41'q\"b\\s~x"


def _forms(token: str) -> dict[str, str]:
    """The token as it may show up in text, computed independently of the code under test."""
    raw = token.encode()
    forms = {
        "as is": token,
        "bytes repr": repr(raw),
        "json": orjson.dumps(token).decode(),
        "url": quote(token, safe=""),
        "url plus": quote_plus(token),
    }
    for prefix in ("", "a", "ab"):  # base64 of text holding the token, at each alignment
        forms[f"base64 after {len(prefix)}"] = base64.b64encode(prefix.encode() + raw + b"!").decode()
        forms[f"urlsafe base64 after {len(prefix)}"] = base64.urlsafe_b64encode(prefix.encode() + raw).decode()
    return forms


def _core(form: str) -> str:
    """The part of an encoded form that must not survive: all of it but the edges touched by neighbours."""
    return form[4:-4] if len(form) > 24 else form


def _shown(error: BaseException) -> str:
    """Everything a user may see of an error: its text, repr, detail and the printed traceback with causes."""
    detail = getattr(error, "detail", "")
    return "\n".join([str(error), repr(error), repr(detail), *traceback.format_exception(error)])


def test_13_encodings_differ() -> None:
    """The oracle: no encoding holds the token as is, so scrubbing the plain token alone would miss each."""
    encoded = {name: form for name, form in _forms(TOKEN).items() if name != "as is"}
    assert all(TOKEN not in form and _core(form) not in TOKEN for form in encoded.values())


@pytest.mark.parametrize("status", [400, 401, 422, 500])
@pytest.mark.parametrize("form", list(_forms(TOKEN)))
def test_13_echoed_token_is_scrubbed_in_every_encoding(hostile: Hostile, status: int, form: str) -> None:
    echoed = _forms(TOKEN)[form]
    body = orjson.dumps({"detail": f"token {echoed} is not valid", "nested": {"list": [echoed]}})
    hostile.serve(Answer(body, status=status, headers={"content-type": "application/json"}))
    with LogfireQueryClient(TOKEN, base_url=hostile.base_url, retries=0) as client:
        with pytest.raises(QueryHTTPError) as caught:
            client.query_arrow("SELECT 1")
    shown = _shown(caught.value)
    assert _core(echoed) not in shown
    assert "<read token>" in shown


@pytest.mark.parametrize("form", list(_forms(TOKEN)))
def test_13_echoed_token_is_scrubbed_from_an_unexpected_200(hostile: Hostile, form: str) -> None:
    echoed = _forms(TOKEN)[form]
    hostile.serve(Answer(f"<html>{echoed}</html>".encode(), headers={"content-type": "text/html"}))
    with LogfireQueryClient(TOKEN, base_url=hostile.base_url, retries=0) as client:
        with pytest.raises(logfire_io.UnexpectedResponseError) as caught:
            client.query_arrow("SELECT 1")
    assert _core(echoed) not in _shown(caught.value)


@pytest.mark.parametrize("padding", ["\n", "\r\n", " ", "\t \n"])
def test_13_surrounding_whitespace_is_stripped(
    server: LocalLogfire, padding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LogfireQueryClient(server.read_token + padding, base_url=server.base_url) as client:
        assert client.query_json_rows("SELECT 1 AS x")["rows"] == [{"x": 1}]
    monkeypatch.setenv("LOGFIRE_READ_TOKEN", padding + server.read_token + padding)
    frame = logfire_io.read_logfire("SELECT 1 AS x", base_url=server.base_url)
    assert frame["x"].to_list() == [1]


@pytest.mark.parametrize("inner", [" ", "\t", "\n", "\x00", "\x7f", "\u00e9", "\u200b"])
def test_13_inner_whitespace_or_control_characters_fail_before_any_request(
    server: LocalLogfire, inner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = TOKEN[:20] + inner + TOKEN[20:]
    before = len(server.queries)
    with pytest.raises(ConfigurationError, match=r"character 21 of \d+") as caught:
        LogfireQueryClient(token, base_url=server.base_url)
    assert "`read_token`" in str(caught.value)
    errors: list[BaseException] = [caught.value]
    if inner != "\x00":  # the environment cannot hold a NUL
        monkeypatch.setenv("LOGFIRE_READ_TOKEN", token)
        with pytest.raises(ConfigurationError, match="LOGFIRE_READ_TOKEN has a space, control") as from_env:
            logfire_io.read_logfire("SELECT 1", base_url=server.base_url)
        errors.append(from_env.value)
    assert len(server.queries) == before
    for error in errors:
        shown = _shown(error)
        assert all(_core(f) not in shown for f in _forms(token).values())
        assert TOKEN[:20] not in shown


def test_13_client_defaults_to_the_environment(server: LocalLogfire, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="LOGFIRE_READ_TOKEN"):
        LogfireQueryClient(base_url=server.base_url)
    monkeypatch.setenv("LOGFIRE_READ_TOKEN", server.read_token)
    monkeypatch.setenv("LOGFIRE_BASE_URL", server.base_url)
    with LogfireQueryClient() as client:
        assert client.query_json_rows("SELECT 2 AS x")["rows"] == [{"x": 2}]
    with LogfireQueryClient(read_token="pylf_v1_local_wrong") as client:  # an explicit token wins
        with pytest.raises(AuthenticationError):
            client.query_json_rows("SELECT 2 AS x")


def test_13_async_client_defaults_to_the_environment(server: LocalLogfire, monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    monkeypatch.setenv("LOGFIRE_READ_TOKEN", server.read_token + "\n")

    async def run() -> dict:
        async with logfire_io.AsyncLogfireQueryClient(base_url=server.base_url, retries=Retry(retries=0)) as client:
            return await client.query_json_rows("SELECT 3 AS x")

    assert anyio.run(run)["rows"] == [{"x": 3}]


def test_13_cli_refuses_a_broken_token_without_showing_it(
    server: LocalLogfire, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "pylf_v1_local_abc def"
    assert main(["query", "SELECT 1", "--read-token", token, "--base-url", server.base_url]) == 1
    err = capsys.readouterr().err
    assert "--read-token has a space, control or non-ASCII character" in err
    assert "abc" not in err


def test_13_a_token_echoed_in_an_unexpected_body_or_its_content_type_is_never_shown() -> None:
    import httpx

    from logfire_io._protocol import unexpected_body

    token = "pylf_v1_us_" + "k" * 41
    body = b"<p>" + b"x" * 137 + b"Authorization: " + token.encode()  # the token straddles the 200-character cut
    request = httpx.Request("POST", "http://127.0.0.1:9/v2/query")
    response = httpx.Response(200, headers={"content-type": f"text/html; echo={token}"}, content=body, request=request)
    error = unexpected_body(response, "an Arrow IPC stream", body, token)
    assert token[:20] not in str(error)
    assert token[:20] not in repr(error.detail)
