"""The project page: what ``/v1/info``'s ``project_url`` points at, as a small HTML page.

Clients (the SDK, MCP servers) print ``project_url`` as "see your data here". On the real service it opens the
project in the web UI; here it names the project and links to the query endpoints, so the link a user is given
works instead of answering 404. The page needs no token (a browser following the link sends none) and never
shows one.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["project_route"]

_ENDPOINTS = [
    ("POST", "/v2/query", "the query API (JSON body: sql, min_timestamp, max_timestamp, limit)"),
    ("GET", "/v1/query", "the older query API (query string: sql, min_timestamp, max_timestamp, limit)"),
    ("GET", "/v1/schemas", "the tables and their columns"),
    ("GET", "/v1/read-token-info", "which project the read token reads"),
    ("GET", "/v1/info", "the project's name and this page's address"),
]


def _page(organization: str, project: str, base_url: str) -> str:
    title = escape(f"{organization}/{project}")
    items = "\n".join(
        f'<li><code>{method}</code> <a href="{escape(base_url + path)}">{escape(path)}</a>: {escape(text)}</li>'
        for method, path, text in _ENDPOINTS
    )
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title} · logfire-io local server</title></head>
<body>
<h1>{title}</h1>
<p>Project <strong>{escape(project)}</strong> of organization <strong>{escape(organization)}</strong>,
served by a local Logfire-compatible query server at <code>{escape(base_url)}</code>.
Every query endpoint needs the read token in the <code>Authorization</code> header.</p>
<ul>
{items}
</ul>
<p>Tables: <code>records</code> (spans and logs), <code>records_all</code> (with pending spans),
<code>metrics</code>.</p>
</body>
</html>
"""


def project_route(organization: str, project: str) -> Route:
    """The route of ``{base_url}/{organization}/{project}``, the ``project_url`` that ``/v1/info`` reports.

    The path is fixed (not ``/{org}/{project}`` with parameters), so it cannot shadow another endpoint: a
    wrong method on ``/v2/query`` still gets 405.
    """

    def project_page(request: Request) -> Response:
        base_url = str(request.base_url).rstrip("/")
        return HTMLResponse(_page(organization, project, base_url))

    return Route(f"/{organization}/{project}", project_page, methods=["GET"])
