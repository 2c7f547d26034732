"""Issue 13: every public function has a complete docstring of its own, and its examples run.

The examples are run as doctests against a local Logfire named by ``LOGFIRE_READ_TOKEN`` and
``LOGFIRE_BASE_URL``, as a user's environment would name the real one; they may use nothing else.
"""

from __future__ import annotations

import doctest
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import logfire_io
import logfire_io._client
import logfire_io._export
import logfire_io._plan
import logfire_io._protocol
import logfire_io._read
import logfire_io._slicing
import logfire_io.pandas
import logfire_io.polars
from logfire_io.server import LocalLogfire

MODULES = [
    logfire_io._client,
    logfire_io._export,
    logfire_io._plan,
    logfire_io._protocol,
    logfire_io._slicing,
    logfire_io._read,
    logfire_io.polars,
    logfire_io.pandas,
]
DOCTESTS = [
    test
    for module in MODULES
    for test in doctest.DocTestFinder(exclude_empty=True).find(module)
    if test.examples and not test.name.split(".")[-1].startswith("_")
]


def _public() -> Iterator[tuple[str, Callable[..., Any], bool]]:
    """(name, object, is_class) for every public function, class and method, the namespaces' included."""
    namespaces = [logfire_io.polars.LogfireExprNamespace, logfire_io.polars.LogfireFrameNamespace]
    objects = [getattr(logfire_io, n) for n in logfire_io.__all__] + namespaces
    for obj in objects:
        if isinstance(obj, type) and issubclass(obj, BaseException):
            continue  # exception classes say when they are raised; they have no behaviour to show
        if inspect.isfunction(obj):
            yield obj.__name__, obj, False
        elif isinstance(obj, type):
            if obj not in namespaces:
                yield obj.__name__, obj, True
            for name, member in vars(obj).items():
                if name.startswith("_"):
                    continue
                function = member.fget if isinstance(member, property) else member
                if inspect.isfunction(function):
                    yield f"{obj.__name__}.{name}", function, False


PUBLIC = list(_public())
PROPERTIES = {"client", "protocol"}
"""Documented as attributes: what they hold is their summary."""
NO_RAISES = {"close", "aclose", "halves", "delay", "level_name", *PROPERTIES}
"""Functions that raise nothing of their own."""


def _section(doc: str, title: str) -> str | None:
    """The text of a numpydoc section, or None when absent."""
    match = re.search(rf"^{title}\n-+\n(.*?)(?=^\w[\w ]*\n-+\n|\Z)", doc, flags=re.MULTILINE | re.DOTALL)
    return match[1] if match else None


@pytest.mark.parametrize(("name", "obj", "is_class"), PUBLIC, ids=[p[0] for p in PUBLIC])
def test_13_public_docstrings_are_complete(name: str, obj: Callable[..., Any], is_class: bool) -> None:
    doc = inspect.getdoc(obj) or ""
    signature = inspect.signature(obj)
    parameters = [p for p in signature.parameters if p not in {"self", "cls"}]
    problems = []
    if parameters:
        listed = _section(doc, "Parameters") or ""
        problems += [f"parameter {p} not documented" for p in parameters if not re.search(rf"\b{p}\b", listed)]
    returns = signature.return_annotation not in {"None", None, inspect.Signature.empty}
    returned = _section(doc, "Returns") is not None or _section(doc, "Yields") is not None
    if returns and not is_class and name.split(".")[-1] not in PROPERTIES and not returned:
        problems.append("no Returns or Yields")
    if name.split(".")[-1] not in NO_RAISES and not is_class and _section(doc, "Raises") is None:
        problems.append("no Raises")
    examples = _section(doc, "Examples") or ""
    if ">>>" not in examples:
        problems.append("no runnable example")
    if "+SKIP" in doc or "see :" in doc.split("\n\n")[0].lower():
        problems.append("a skipped example or a 'see ...' instead of its own docstring")
    assert problems == []


def test_13_every_public_docstring_is_run() -> None:
    names = {t.name for t in DOCTESTS}
    unrun = [n for n, obj, _ in PUBLIC if f"{obj.__module__}.{obj.__qualname__}" not in names]
    assert unrun == []


@pytest.fixture(scope="module")
def doc_server() -> Iterator[LocalLogfire]:
    """Rows up to the next hour, more than one request's worth, as a live project would have."""
    with LocalLogfire(demo_rows=12_000, seed=17) as srv:
        yield srv


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_13_docstring_examples_run(
    doc_server: LocalLogfire, monkeypatch: pytest.MonkeyPatch, test: doctest.DocTest
) -> None:
    monkeypatch.setenv("LOGFIRE_READ_TOKEN", doc_server.read_token)
    monkeypatch.setenv("LOGFIRE_BASE_URL", doc_server.base_url)
    test.globs = {"__name__": test.name}  # nothing but what the example imports itself
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=output.append)
    assert result.failed == 0, "".join(output)
