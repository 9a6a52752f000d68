"""A Parquet file's pages as their own headers describe them: what decoding the file takes, known before decoding.

pyarrow decodes a column chunk page by page and sizes each page from its header (a Thrift compact-protocol
PageHeader just before the page's bytes): the bytes it decompresses to, the values it holds. The footer's
sizes are a summary that no reader holds the pages to, so a submitted file can claim 4 MB and decode to
3 GB. `read_pages` walks every column chunk from the offsets its footer gives, parsing only the headers'
bytes, and returns what they say; a chunk that lies outside the file, whose pages run past its end or stop
short of it, or whose pages hold another number of values than its footer counts is refused. Caps bound the
pages walked, the bytes of one header and how deep its structs nest.

The PageHeader fields read (parquet.thrift): 1 type, 2 uncompressed_page_size, 3 compressed_page_size,
5 data_page_header {1 num_values}, 7 dictionary_page_header {1 num_values},
8 data_page_header_v2 {1 num_values, 3 num_rows}; every other field is skipped by its type.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow.parquet as pq

DATA_PAGE, INDEX_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = range(4)
MAX_HEADER_BYTES = 1 << 20  # a header is tens of bytes, a few kB with statistics (pyarrow clips them at 4 kB)
_MAX_DEPTH = 8  # PageHeader > data_page_header > statistics: three levels in the format

# Thrift compact protocol types (the low nibble of a field header).
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
_INTEGERS = (_BYTE, _I16, _I32, _I64)


class PageError(ValueError):
    """A page header that cannot be read, or pages that disagree with the footer (the message says where)."""


class _Truncated(Exception):
    """The header continues past the bytes read so far."""


class _Compact:
    """A Thrift compact-protocol reader over a buffer; it never reads past the buffer or nests past _MAX_DEPTH."""

    def __init__(self, data: memoryview):
        self.data, self.position = data, 0

    def take(self, count: int) -> memoryview:
        if count < 0:
            raise PageError(f"a negative length ({count})")
        if self.position + count > len(self.data):
            raise _Truncated
        self.position += count
        return self.data[self.position - count: self.position]

    def varint(self) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise PageError("a variable-length integer of more than 10 bytes")

    def integer(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)  # zigzag

    def struct(self, depth: int = 0) -> dict[int, Any]:
        """The fields of a struct by id: integers and booleans as values, structs as dicts, the rest skipped (None)."""
        if depth > _MAX_DEPTH:
            raise PageError(f"structs nested more than {_MAX_DEPTH} deep")
        fields, field_id = {}, 0
        while True:
            header = self.take(1)[0]
            if header == 0:
                return fields
            kind, delta = header & 0x0F, header >> 4
            field_id = field_id + delta if delta else self.integer()
            fields[field_id] = True if kind == _TRUE else False if kind == _FALSE else self.value(kind, depth)

    def value(self, kind: int, depth: int) -> Any:
        if kind in _INTEGERS:
            return self.take(1)[0] if kind == _BYTE else self.integer()
        if kind == _STRUCT:
            return self.struct(depth + 1)
        if kind == _DOUBLE:
            self.take(8)
        elif kind == _BINARY:
            self.take(self.varint())
        elif kind in (_LIST, _SET):
            self._skip_list(depth)
        elif kind == _MAP:
            self._skip_map(depth)
        else:
            raise PageError(f"an unknown Thrift type {kind}")
        return None

    def _skip_list(self, depth: int) -> None:
        header = self.take(1)[0]
        size, kind = header >> 4, header & 0x0F
        if size == 15:
            size = self.varint()
        self._skip_values([kind] * size, depth)

    def _skip_map(self, depth: int) -> None:
        size = self.varint()
        if size:
            kinds = self.take(1)[0]
            self._skip_values([kinds >> 4, kinds & 0x0F] * size, depth)

    def _skip_values(self, kinds: list[int], depth: int) -> None:
        # Every value takes at least a byte: a count beyond the bytes left is a header cut short or a lie.
        if len(kinds) > len(self.data) - self.position:
            raise _Truncated
        for kind in kinds:
            if kind in (_TRUE, _FALSE):  # a boolean element is one byte
                self.take(1)
            else:
                self.value(kind, depth + 1)


@dataclasses.dataclass(frozen=True)
class Page:
    """One page as its header describes it."""

    kind: int
    header_bytes: int
    uncompressed_bytes: int
    compressed_bytes: int
    num_values: int
    num_rows: int | None  # data pages v2 only


def _page(fields: dict[int, Any], header_bytes: int) -> Page:
    kind, uncompressed, compressed = (fields.get(key) for key in (1, 2, 3))
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in (kind, uncompressed, compressed)):
        raise PageError("a page header without its type and sizes")
    if uncompressed < 0 or compressed < 0:
        raise PageError(f"a page header with a negative size ({uncompressed:,} bytes decompressed, {compressed:,} "
                        f"stored)")
    detail = {DATA_PAGE: 5, DICTIONARY_PAGE: 7, DATA_PAGE_V2: 8}.get(kind)
    if kind == INDEX_PAGE:
        return Page(kind, header_bytes, uncompressed, compressed, 0, None)
    if detail is None:
        raise PageError(f"a page of type {kind}, which Parquet does not define")
    described = fields.get(detail)
    num_values = described.get(1) if isinstance(described, dict) else None
    num_rows = described.get(3) if kind == DATA_PAGE_V2 else None
    if not isinstance(num_values, int) or num_values < 0 or (kind == DATA_PAGE_V2 and (
            not isinstance(num_rows, int) or num_rows < 0)):
        raise PageError(f"a page header of type {kind} without its count of values")
    return Page(kind, header_bytes, uncompressed, compressed, num_values, num_rows)


def read_header(data: memoryview, offset: int, end: int) -> Page:
    """The page whose header starts at byte `offset` of the file `data`; the header must end before `end`."""
    reader = _Compact(data[offset: min(end, offset + MAX_HEADER_BYTES)])
    try:
        return _page(reader.struct(), reader.position)
    except _Truncated:
        raise PageError(f"the page header at byte {offset:,} runs past the end of its column chunk (byte {end:,}) "
                        f"or over {MAX_HEADER_BYTES:,} bytes") from None


@dataclasses.dataclass
class ChunkPages:
    """What the pages of one column chunk hold, added up from their headers."""

    pages: int = 0
    values: int = 0  # in the data pages: levels, so nulls and empty lists count
    rows: int = 0  # values of a flat column's v1 pages, num_rows of v2 pages
    dictionary_values: int = 0
    dictionary_bytes: int = 0  # decompressed
    data_bytes: int = 0  # decompressed

    def add(self, page: Page) -> None:
        self.pages += 1
        # A page decompresses into a buffer of its declared size; an uncompressed one is read as it is stored.
        decoded = max(page.uncompressed_bytes, page.compressed_bytes)
        if page.kind == DICTIONARY_PAGE:
            self.dictionary_values += page.num_values
            self.dictionary_bytes += decoded
        else:
            self.values += page.num_values
            self.rows += page.num_values if page.num_rows is None else page.num_rows
            self.data_bytes += decoded


def _chunk_range(chunk: pq.ColumnChunkMetaData) -> tuple[int, int]:
    """Where a column chunk lies, as pyarrow locates it: from its dictionary page (if any) or first data page."""
    start = chunk.data_page_offset
    if chunk.has_dictionary_page and 0 < chunk.dictionary_page_offset < start:
        start = chunk.dictionary_page_offset
    return start, start + chunk.total_compressed_size


def read_pages(data: memoryview, metadata: pq.FileMetaData, max_pages: int) -> list[list[ChunkPages]]:
    """Per row group, per column: what the column chunk's pages hold, from their headers, in the file `data`.

    Every chunk lies in bytes 4..data_end, where the footer begins. At most `max_pages` pages
    are walked in all. PageError says which row group and column, and what disagrees.
    """
    groups, walked = [], 0
    data_end = len(data) - 8 - metadata.serialized_size
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        chunks = []
        for j in range(group.num_columns):
            chunk = group.column(j)
            where = f"row group {i}, column {chunk.path_in_schema}"
            start, end = _chunk_range(chunk)
            if start < 4 or end > data_end or start > end:
                raise PageError(f"{where}: the footer places it at bytes {start:,}..{end:,}, outside the file's data "
                                f"(bytes 4..{data_end:,})")
            pages = ChunkPages()
            position = start
            while position < end:
                walked += 1
                if walked > max_pages:
                    raise PageError(f"more than {max_pages:,} pages; a submission's file holds a few per column")
                try:
                    page = read_header(data, position, end)
                except PageError as err:
                    raise PageError(f"{where}: {err}") from None
                position += page.header_bytes + page.compressed_bytes
                if position > end:
                    raise PageError(f"{where}: a page runs to byte {position:,}, past the end of its column chunk "
                                    f"(byte {end:,}) that the footer gives")
                pages.add(page)
            if pages.values != chunk.num_values:
                raise PageError(f"{where}: its pages hold {pages.values:,} values, its footer says "
                                f"{chunk.num_values:,}")
            chunks.append(pages)
        groups.append(chunks)
    return groups
