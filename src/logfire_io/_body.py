"""Response bodies read within bounds: inflated here, capped in size and in compression ratio, under a deadline.

httpx inflates a compressed body in one call per network chunk and without limit, so a small gzip bomb (or a
body compressed twice, which httpx also undoes) becomes gigabytes in memory before anyone can count them. The
clients therefore read the raw bytes and inflate them here, at most ``_STEP`` bytes per call, counting as they
go; every network wait is also checked against the request's deadline, so a body that trickles in ends.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from logfire_io._ipc import IncompleteStream

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ACCEPT_ENCODING", "BodyLimits", "BodyReader", "BodyRefused", "DeadlineExceeded"]

ACCEPT_ENCODING = "gzip, deflate"
"""The encodings offered (and the only ones inflated): those the standard library can inflate in bounded steps."""
_STEP = 1 << 20
_GZIP_OR_ZLIB = 47  # zlib's "detect a gzip or zlib header" window bits


class BodyRefused(Exception):
    """Raised when a body is too large, inflates suspiciously far, or uses an encoding that was not offered."""


class DeadlineExceeded(Exception):
    """Raised when a request has taken longer than its deadline."""


@dataclass(frozen=True)
class BodyLimits:
    """How far one response body may go.

    Attributes
    ----------
    max_bytes
        Decompressed bytes one response may hold.
    max_ratio
        Decompressed bytes per compressed byte, checked once ``ratio_floor`` bytes have been inflated: gzip cannot
        exceed about 1,030, so only degenerate data (a bomb, or a body compressed twice) goes past 1,000.
    deadline
        Seconds one request may spend on the network, from sending it to the last byte of its body.
    ratio_floor
        Bodies smaller than this are never refused for their ratio (a small result of zeros compresses well).
    """

    max_bytes: int
    max_ratio: float
    deadline: float
    ratio_floor: int = 64 << 20


class _Inflater:
    """One gzip or zlib layer, inflated at most ``_STEP`` bytes per call; gzip members may follow each other."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(_GZIP_OR_ZLIB)
        self.fed = False

    @property
    def complete(self) -> bool:
        """Whether the layer ended where its compressed data says it ends (or never got any data)."""
        return self._zlib.eof or not self.fed

    def inflate(self, data: bytes) -> Iterator[bytes]:
        self.fed = self.fed or bool(data)
        while True:
            try:
                out = self._zlib.decompress(data, _STEP)
            except zlib.error as exc:
                msg = f"the body is not valid gzip/deflate data ({exc})"
                raise BodyRefused(msg) from None
            if out:
                yield out
            if self._zlib.eof:
                data = self._zlib.unused_data
                if not data:
                    return
                self._zlib = zlib.decompressobj(_GZIP_OR_ZLIB)
                continue
            data = self._zlib.unconsumed_tail
            if not data and len(out) < _STEP:
                return


class BodyReader:
    """Push raw body chunks in, get decoded chunks out, each counted against the limits.

    Parameters
    ----------
    content_encoding
        The response's ``Content-Encoding`` header (None or ``identity``: not compressed).
    limits
        The caps and the deadline.
    started
        ``time.monotonic()`` when the request was sent: the deadline counts from there.
    """

    def __init__(self, content_encoding: str | None, limits: BodyLimits, started: float) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c not in {"", "identity"}]
        unsupported = sorted({c for c in codings if c not in {"gzip", "x-gzip", "deflate"}})
        if unsupported:
            msg = f"the body uses content-encoding {', '.join(unsupported)}, which was not offered ({ACCEPT_ENCODING})"
            raise BodyRefused(msg)
        self._layers = [_Inflater() for _ in codings]
        self._limits = limits
        self._deadline_at = started + limits.deadline
        self.raw_bytes = 0
        self.decoded_bytes = 0

    def check_deadline(self) -> None:
        """Raise :class:`DeadlineExceeded` if the request is past its deadline."""
        if time.monotonic() > self._deadline_at:
            msg = f"the response took longer than the {self._limits.deadline:g} s allowed for one request"
            raise DeadlineExceeded(msg)

    def pause(self, seconds: float) -> None:
        """Do not count ``seconds`` (time the caller spent between batches, not waiting for the network)."""
        self._deadline_at += seconds

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded bytes of one raw chunk, in pieces of at most about a megabyte."""
        self.check_deadline()
        self.raw_bytes += len(raw)
        yield from self._through(0, raw)

    def finish(self) -> None:
        """Check that every compressed layer ended properly.

        Raises
        ------
        IncompleteStream
            The compressed data stopped before its end: the body was cut short.
        """
        if not all(layer.complete for layer in self._layers):
            msg = f"the compressed body ended early, after {self.raw_bytes:,} bytes"
            raise IncompleteStream(msg)

    def _through(self, layer: int, data: bytes) -> Iterator[bytes]:
        if layer == len(self._layers):
            self._count(len(data))
            yield data
            return
        for piece in self._layers[layer].inflate(data):
            yield from self._through(layer + 1, piece)

    def _count(self, size: int) -> None:
        self.decoded_bytes += size
        limits = self._limits
        if self.decoded_bytes > limits.max_bytes:
            msg = (
                f"the response body is larger than the {limits.max_bytes:,} bytes allowed"
                "\n\nHint: narrow the query (fewer columns, a shorter window) or raise `max_response_bytes=`."
            )
            raise BodyRefused(msg)
        if self._layers and self.decoded_bytes > limits.ratio_floor:
            ratio = self.decoded_bytes / max(self.raw_bytes, 1)
            if ratio > limits.max_ratio:
                msg = (
                    f"the response body inflates {ratio:,.0f}-fold ({self.raw_bytes:,} compressed bytes became more "
                    f"than {self.decoded_bytes:,}), past the {limits.max_ratio:g} allowed: it looks like a "
                    "decompression bomb.\n\nHint: if the data really is this repetitive, raise "
                    "`max_compression_ratio=`."
                )
                raise BodyRefused(msg)
