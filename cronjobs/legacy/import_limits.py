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
        rows: Iterator[object] = csv.reader(_lines(upload), delimiter=delimiter)
    elif file_format is base_formats.XLSX:
        rows = _sheet_rows(upload)
    else:
        return 0  # not an import format of the admin's
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


def _sheet_rows(upload: UploadedFile) -> Iterator[object]:
    """The first sheet's rows, read lazily (openpyxl's read-only mode streams the sheet)."""
    import openpyxl  # type: ignore[import-untyped]  # no stubs pinned; used here only

    try:
        book = openpyxl.load_workbook(upload, read_only=True, data_only=True)
    except Exception:  # not a workbook: the import itself will say so
        return
    try:
        sheet = book.active
        if sheet is not None:
            yield from sheet.iter_rows(values_only=True)
    finally:
        book.close()
