"""Incremental Arrow IPC stream decoding: feed byte chunks as they arrive, get record batches out.

pyarrow can only pull from a file-like object; an async HTTP body can only be pushed. This decoder reads the
IPC framing itself (continuation marker, metadata length, and the message's ``bodyLength`` from its flatbuffer
header) to know when a message is complete, then lets pyarrow decode it. Batch buffers point into the joined
chunks (a view, not a slice): no copy beyond gathering a message's chunks into one buffer. Sync and async
clients share it.

Nothing from the network is trusted: pyarrow's IPC reader checks the framing but not the data, so a batch whose
string offsets point past its buffers would be handed out and crash the interpreter when read. Every batch is
therefore validated in full (offsets, lengths, UTF-8) before it leaves the decoder, and any byte after the
end-of-stream marker is refused, so the answer never depends on how the body was chunked.
"""

from __future__ import annotations

import struct

import pyarrow as pa

__all__ = ["ArrowStreamDecoder", "IncompleteStream", "InvalidStream"]

_CONTINUATION = b"\xff\xff\xff\xff"
_MAX_METADATA = 1 << 24  # a flatbuffer header this large means the bytes are not Arrow at all


class IncompleteStream(Exception):
    """Raised by :meth:`ArrowStreamDecoder.finish` when the stream ended before its end-of-stream marker."""


class InvalidStream(ValueError):
    """Raised by :meth:`ArrowStreamDecoder.feed` when the bytes are not a valid Arrow IPC stream.

    Not retried: a server that sent corrupt data once will most likely send it again.
    """


class _FlatTable:
    """One table of a flatbuffer: just enough reading for the fields of an IPC message header used here."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data, self.position = data, position
        self._vtable = position - struct.unpack_from("<i", data, position)[0]
        self._vtable_size = struct.unpack_from("<H", data, self._vtable)[0]

    def _field(self, index: int) -> int:
        """Where field ``index`` is stored, or 0 when absent."""
        slot = 4 + 2 * index
        offset = struct.unpack_from("<H", self.data, self._vtable + slot)[0] if slot < self._vtable_size else 0
        return self.position + offset if offset else 0

    def scalar(self, index: int, fmt: str) -> int:
        at = self._field(index)
        return int(struct.unpack_from(fmt, self.data, at)[0]) if at else 0

    def table(self, index: int) -> _FlatTable | None:
        at = self._field(index)
        return _FlatTable(self.data, at + struct.unpack_from("<I", self.data, at)[0]) if at else None

    def structs(self, index: int, fmt: str) -> list[tuple[int, ...]]:
        """A vector of structs of layout ``fmt``."""
        at = self._field(index)
        if not at:
            return []
        start = at + struct.unpack_from("<I", self.data, at)[0]
        count, size = struct.unpack_from("<I", self.data, start)[0], struct.calcsize(fmt)
        return [struct.unpack_from(fmt, self.data, start + 4 + i * size) for i in range(count)]


def _message(metadata: bytes) -> _FlatTable:
    """The root ``org.apache.arrow.flatbuf.Message`` table of a message's metadata."""
    return _FlatTable(metadata, struct.unpack_from("<I", metadata, 0)[0])


def _body_length(metadata: bytes) -> int:
    """The ``bodyLength`` field of a flatbuffer ``org.apache.arrow.flatbuf.Message``."""
    length = _message(metadata).scalar(3, "<q")
    if length < 0:
        msg = f"an Arrow message declares a negative body length ({length})"
        raise InvalidStream(msg)
    return length


_RECORD_BATCH = 3  # MessageHeader.RecordBatch


def _inflated_size(metadata: bytes, body: bytes | memoryview) -> int:
    """Bytes a record batch's buffers take once decompressed, read from the body without decompressing it.

    A compressed buffer (IPC body compression, zstd or lz4) starts with its uncompressed length, or -1 when it
    was stored as is; an uncompressed batch takes its body's length.
    """
    message = _message(metadata)
    batch = message.table(2) if message.scalar(1, "<B") == _RECORD_BATCH else None
    if batch is None:
        return 0
    if batch.table(3) is None:  # no BodyCompression: the buffers are the body as sent
        return len(body)
    total = 0
    for offset, length in batch.structs(2, "<qq"):
        if length >= 8 and 0 <= offset <= len(body) - 8:
            declared = struct.unpack_from("<q", body, offset)[0]
            total += length - 8 if declared == -1 else max(declared, 0)
    return total


class ArrowStreamDecoder:
    """Push-style decoder of one Arrow IPC stream.

    Examples
    --------
    >>> decoder = ArrowStreamDecoder()
    >>> for chunk in chunks:  # doctest: +SKIP
    ...     for batch in decoder.feed(chunk):
    ...         handle(batch)
    >>> decoder.finish()  # doctest: +SKIP
    """

    def __init__(self, max_rows: int | None = None, max_bytes: int | None = None) -> None:
        self.max_rows = max_rows
        """More rows than this (the request's limit) make the stream invalid: a service never sends them."""
        self.max_bytes = max_bytes
        """The most bytes the batches' buffers may take once decompressed (IPC body compression)."""
        self.inflated_bytes = 0
        self.rows = 0
        self._chunks: list[bytes | memoryview] = []
        self._buffered = 0
        self._needed: int | None = None
        self._metadata_span = (0, 0)
        self.schema: pa.Schema | None = None
        """The stream's schema, once its first message has arrived."""
        self.done = False
        """Whether the end-of-stream marker has arrived."""
        self.bytes_received = 0
        self.batches_decoded = 0

    def _joined(self) -> memoryview:
        """The buffered bytes as one view: joined (one copy) only when they came in several chunks."""
        if len(self._chunks) != 1:
            self._chunks = [memoryview(b"".join(self._chunks))]
        return memoryview(self._chunks[0])

    def _take(self, size: int) -> memoryview:
        """The next ``size`` bytes, without copying them: views of the joined chunks, which pyarrow reads in place."""
        data = self._joined()
        head, rest = data[:size], data[size:]
        self._chunks = [rest] if rest.nbytes else []
        self._buffered = rest.nbytes
        return head

    def _peek(self, size: int) -> memoryview:
        return self._joined()[:size]

    def _message_size(self) -> int | None:
        """Bytes of the next complete message (0 for end of stream), or None if more input is needed."""
        if self._needed is not None:
            return self._needed
        if self._buffered < 8:
            return None
        prefix = self._peek(8)
        if prefix[:4] == _CONTINUATION:
            metadata_length, start = struct.unpack_from("<i", prefix, 4)[0], 8
        else:  # pre-1.0 streams have no continuation marker
            metadata_length, start = struct.unpack_from("<i", prefix, 0)[0], 4
        if not 0 <= metadata_length < _MAX_METADATA:
            msg = f"not an Arrow IPC stream (it starts with {bytes(prefix)!r})"
            raise InvalidStream(msg)
        if metadata_length == 0:
            self._needed = start
            return start
        if self._buffered < start + metadata_length:
            return None
        metadata = self._peek(start + metadata_length)[start:]
        try:
            body_length = _body_length(metadata)
        except struct.error:
            msg = "an Arrow message header is malformed (its offsets point outside it)"
            raise InvalidStream(msg) from None
        self._metadata_span = (start, start + metadata_length)
        self._needed = start + metadata_length + body_length
        return self._needed

    def _count_inflated(self, raw: bytes) -> None:
        """Add a complete message's decompressed size, refusing it before pyarrow inflates past ``max_bytes``."""
        start, end = self._metadata_span
        try:
            self.inflated_bytes += _inflated_size(raw[start:end], memoryview(raw)[end:])  # the body is not copied
        except struct.error:
            msg = "an Arrow record batch header is malformed (its offsets point outside it)"
            raise InvalidStream(msg) from None
        if self.max_bytes is not None and self.inflated_bytes > self.max_bytes:
            msg = (
                f"the Arrow stream's compressed buffers inflate past the {self.max_bytes:,} bytes allowed"
                "\n\nHint: narrow the query (fewer columns, a shorter window) or raise `max_response_bytes=`."
            )
            raise InvalidStream(msg)

    def feed(self, chunk: bytes) -> list[pa.RecordBatch]:
        """Add bytes; return the record batches they complete, each validated in full.

        Raises
        ------
        InvalidStream
            The bytes are not a valid Arrow IPC stream: bad framing, a batch whose offsets, lengths or UTF-8 are
            invalid, an unsupported message, more rows than ``max_rows``, or bytes after the end-of-stream marker.
        """
        if chunk:
            self._chunks.append(chunk)
            self._buffered += len(chunk)
            self.bytes_received += len(chunk)
        batches = []
        while not self.done and (size := self._message_size()) is not None and self._buffered >= size:
            self._needed = None
            raw = self._take(size)
            if size <= 8 and bytes(raw).rstrip(b"\x00") in (b"", _CONTINUATION):
                if self.schema is None:
                    msg = "the Arrow stream ended before its schema"
                    raise InvalidStream(msg)
                self.done = True
                break
            self._count_inflated(raw)
            batch = self._decode(raw)
            if batch is not None:
                self.rows += batch.num_rows
                if self.max_rows is not None and self.rows > self.max_rows:
                    msg = f"the stream holds more rows than the {self.max_rows:,} asked for"
                    raise InvalidStream(msg)
                batches.append(batch)
                self.batches_decoded += 1
        if self.done and self._buffered:
            msg = f"{self._buffered:,} bytes follow the Arrow end-of-stream marker"
            raise InvalidStream(msg)
        return batches

    def _decode(self, raw: memoryview) -> pa.RecordBatch | None:
        """One complete message: the schema (kept, None returned) or a fully validated record batch."""
        try:
            message = pa.ipc.read_message(pa.py_buffer(raw))
            if self.schema is None:
                if message.type != "schema":  # read_schema reads any header as a schema, and can crash on it
                    msg = f"the stream starts with a {message.type!r} message, not its schema"
                    raise InvalidStream(msg)
                schema = pa.ipc.read_schema(message)
                _check_names(schema)
                self.schema = schema
                return None
            if message.type != "record batch":
                msg = f"unsupported Arrow IPC message {message.type!r} (dictionary-encoded columns are not supported)"
                raise InvalidStream(msg)
            batch = pa.ipc.read_record_batch(message, self.schema)
            batch.validate(full=True)
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:  # pyarrow raises OSError for bad flatbuffers
            msg = f"invalid Arrow data in message {self.batches_decoded + 1}: {exc}"
            raise InvalidStream(msg) from None
        return batch

    def finish(self) -> None:
        """Check that the stream ended properly.

        Raises
        ------
        IncompleteStream
            The end-of-stream marker never arrived: the body was cut short.
        """
        if not self.done:
            msg = f"the Arrow stream ended after {self.bytes_received:,} bytes without its end-of-stream marker"
            raise IncompleteStream(msg)


def _check_names(schema: pa.Schema) -> None:
    """Read every field name and time zone, nested ones too: one that is not UTF-8 raises here, not in a reader.

    polars meets a time zone that is not UTF-8 with a ``PanicException`` (not even an ``Exception``), pandas with
    a ``UnicodeDecodeError``.
    """
    fields = list(schema)
    while fields:
        field = fields.pop()
        _ = field.name  # decodes, raising UnicodeDecodeError for bytes that are not UTF-8
        if pa.types.is_timestamp(field.type):
            _ = field.type.tz
        fields.extend(field.type.field(i) for i in range(field.type.num_fields))
