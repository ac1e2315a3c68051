"""The admin import's limits, checked on the upload before anything parses it: its size, then
its rows, counted while streaming the file and given up at the first row past the limit
(django-import-export would otherwise build the whole dataset first, holding a web worker for
as long as a big file takes). `manage.py import_legacy_metrics` has no limit: it streams."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator

from django.core.files.uploadedfile import UploadedFile
from import_export.formats import base_formats

from cronjobs.legacy.resource import LegacyMetricsResource

DELIMITERS = {base_formats.CSV: ",", base_formats.TSV: "\t"}


def problem(upload: UploadedFile, file_format: type[base_formats.Format]) -> str:
    """Why the admin will not import this file, or "" when it is within the limits."""
    byte_limit = LegacyMetricsResource.ADMIN_BYTE_LIMIT
    row_limit = LegacyMetricsResource.ADMIN_ROW_LIMIT
    if upload.size is not None and upload.size > byte_limit:
        return f"the file is {upload.size:,} bytes: the admin imports up to {byte_limit:,}"
    rows = count_rows(upload, file_format, stop_after=row_limit + 1)  # and the header
    upload.seek(0)
    if rows > row_limit + 1:
        return f"the file has more than {row_limit:,} rows: the admin imports up to {row_limit:,}"
    return ""


def count_rows(
    upload: UploadedFile, file_format: type[base_formats.Format], stop_after: int
) -> int:
    """The file's rows, header included, counted up to one past `stop_after`."""
    delimiter = DELIMITERS.get(file_format)
    if delimiter is not None:
        return _count(csv.reader(_lines(upload), delimiter=delimiter), stop_after)
    if file_format is base_formats.XLSX:
        return _count_sheet_rows(upload, stop_after)
    return 0  # not an import format of the admin's


def _count(rows: Iterator[object], stop_after: int) -> int:
    count = 0
    for _ in rows:
        count += 1
        if count > stop_after:
            break
    return count


def _lines(upload: UploadedFile) -> Iterator[str]:
    """The text's lines, decoded chunk by chunk (quoted newlines are joined by csv.reader)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    rest = ""
    for chunk in upload.chunks():
        lines = (rest + decoder.decode(chunk)).splitlines(keepends=True)
        rest = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        yield from lines
    rest += decoder.decode(b"", final=True)
    if rest:
        yield rest


def _count_sheet_rows(upload: UploadedFile, stop_after: int) -> int:
    """The first sheet's rows: its declared size when that is already too big (Excel writes
    it), else counted lazily (openpyxl's read-only mode streams the sheet)."""
    import openpyxl  # type: ignore[import-untyped]  # no stubs pinned; used here only

    try:
        book = openpyxl.load_workbook(upload, read_only=True, data_only=True)
    except Exception:  # not a workbook: the import itself will say so
        return 0
    try:
        sheet = book.active
        if sheet is None:
            return 0
        declared = sheet.max_row
        if isinstance(declared, int) and declared > stop_after:
            return declared
        return _count(sheet.iter_rows(values_only=True), stop_after)
    finally:
        book.close()
