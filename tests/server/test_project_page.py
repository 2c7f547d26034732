"""Issue 11: ``/v1/info``'s ``project_url`` opens a page naming the project, not a 404."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from logfire_io.server import LocalLogfire


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value for name, value in attrs if tag == "a" and name == "href" and value]


def test_11_project_url_answers_a_page_naming_the_project(server: LocalLogfire, http: httpx.Client) -> None:
    info = http.get("/v1/info").json()
    page = httpx.get(info["project_url"])  # a browser following the link sends no token
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert info["project_name"] in page.text
    assert re.search(r"<title>[^<]*" + re.escape(info["project_name"]), page.text)
    assert server.read_token not in page.text


def test_11_project_page_links_to_the_query_endpoints_of_this_server(server: LocalLogfire, http: httpx.Client) -> None:
    links = _Links()
    links.feed(httpx.get(http.get("/v1/info").json()["project_url"]).text)
    assert {f"{server.base_url}{path}" for path in ("/v2/query", "/v1/query", "/v1/schemas")} <= set(links.hrefs)
    for href in links.hrefs:
        assert href.startswith(server.base_url)
        path = href.removeprefix(server.base_url)
        answer = http.post(path, json={}) if path == "/v2/query" else http.get(path)
        assert answer.status_code != 404, path  # 422 for a query without SQL, 200 for the metadata endpoints


def test_11_project_page_does_not_shadow_other_paths(server: LocalLogfire, http: httpx.Client) -> None:
    assert http.get("/v2/query").status_code == 405  # wrong method, as before the page existed
    assert httpx.get(f"{server.base_url}/someone-else/their-project").status_code == 404
