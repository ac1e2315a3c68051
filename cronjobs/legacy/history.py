"""`manage.py import_legacy_metrics`: Smart Cron V2 history (flagged_products_cron_metrics rows,
exported as CSV, as TSV by `mysql -B`, or as XLSX) into the execution history, in bounded memory.

The column mapping and the row checks are LegacyMetricsResource's (cronjobs/legacy/resource.py),
the same the admin's Import button uses; this module only reads big files fast:

1. a validation pass streams the file and cleans every row; any bad row (reported with its line
   number and column, up to MAX_ERRORS of them) stops the import before anything is written;
2. unknown tasks are created, retired;
3. a writing pass streams the file again and inserts CHUNK rows at a time, one transaction per
   chunk, and the database leaves out rows whose (run_id, attempt) is already there (INSERT
   IGNORE; run_id is a hash of the row): a re-import adds nothing, and an import stopped
   half-way is finished by running it again;
4. the rollups of the days the rows fall on are rebuilt (cronjobs.history.rebuild).

CSV and TSV are read line by line (the csv module); XLSX goes through tablib and openpyxl,
which hold the whole workbook in memory.

Rows are inserted with one multi-row INSERT (ignoring duplicates) per chunk rather than
bulk_create: Django compiles bulk_create's SQL value by value, which took 70 % of a 500,000-row
import. The columns still come from the model: every concrete Execution field, with the
field's default where the V2 row has no value, so fields added later are filled as the ORM
would fill them; datetimes (and any type that needs it) go through the field's own
get_db_prep_save.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.db import connection, models, transaction
from django.db.models.constants import OnConflict

from cronjobs import history
from cronjobs.legacy.resource import LegacyMetricsResource, RowError, ensure_tasks
from cronjobs.models import Execution, Task

CHUNK = 5000
MAX_ERRORS = 20
FORMATS = ("csv", "tsv", "xlsx")
TSV_ESCAPES = {"\\t": "\t", "\\n": "\n", "\\r": "\r", "\\0": "\0", "\\\\": "\\"}

Line = tuple[int, dict[str, Any]]  # (line number in the file, column -> value)


class ImportFailed(Exception):
    """The file cannot be imported; nothing was written."""

    def __init__(self, problems: list[str], more: int = 0):
        self.problems, self.more = problems, more
        tail = f"\n  ... and {more} more" if more else ""
        super().__init__("\n".join(f"  {p}" for p in problems) + tail)


@dataclasses.dataclass
class Report:
    rows: int = 0
    added: int = 0
    already_there: int = 0
    new_tasks: list[str] = dataclasses.field(default_factory=list)
    first: dt.datetime | None = None
    last: dt.datetime | None = None


def file_format(path: Path, named: str | None = None) -> str:
    fmt = (named or path.suffix.lstrip(".")).lower()
    if fmt == "txt":
        fmt = "tsv"  # `mysql -B ... > metrics.txt`
    if fmt not in FORMATS:
        raise ImportFailed(
            [f"{path.name}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}"]
        )
    return fmt


def read_lines(path: Path, fmt: str) -> Iterator[Line]:
    """The file's rows with their line numbers; the header row is line 1."""
    if fmt == "xlsx":
        yield from _xlsx_lines(path)
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if fmt == "csv":
            reader = csv.reader(handle)
            unescape: Callable[[str], str] = str
        else:  # mysql -B: tabs, no quoting, backslash escapes, NULL for null
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            unescape = _tsv_unescape
        headers = [h.strip().lower() for h in next(reader, [])]
        _check_headers(headers)
        for values in reader:
            if not any(values):
                continue
            yield reader.line_num, dict(zip(headers, map(unescape, values), strict=False))


def _xlsx_lines(path: Path) -> Iterator[Line]:
    import tablib  # type: ignore[import-untyped]

    with path.open("rb") as handle:
        data = tablib.Dataset().load(handle.read(), format="xlsx")
    headers = [str(h or "").strip().lower() for h in data.headers or []]
    _check_headers(headers)
    for number, values in enumerate(data, start=2):
        yield number, dict(zip(headers, values, strict=False))


def _check_headers(headers: list[str]) -> None:
    missing = LegacyMetricsResource().missing_columns(headers)
    if missing:
        raise ImportFailed([f"line 1: the file has no column {', '.join(missing)}"])


def _tsv_unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        pair = value[i : i + 2]
        if pair in TSV_ESCAPES:
            out.append(TSV_ESCAPES[pair])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def cleaned(path: Path, fmt: str, resource: LegacyMetricsResource) -> Iterator[dict[str, Any]]:
    for number, row in read_lines(path, fmt):
        try:
            values = resource.clean_row(row)
        except RowError as exc:
            raise ImportFailed([f"line {number}, column {exc.column}: {exc.problem}"]) from None
        yield values


def validate(
    path: Path, fmt: str, resource: LegacyMetricsResource, count_existing: bool = True
) -> Report:
    """The dry run: every row checked, nothing written. Raises ImportFailed listing the bad
    rows; otherwise counts what an import would add (with `count_existing`)."""
    report, more = Report(), 0
    problems: list[str] = []
    tasks: set[str] = set()
    chunk: list[dict[str, Any]] = []
    for number, row in read_lines(path, fmt):
        report.rows += 1
        try:
            values = resource.clean_row(row)
        except RowError as exc:
            if len(problems) < MAX_ERRORS:
                problems.append(f"line {number}, column {exc.column}: {exc.problem}")
            else:
                more += 1
            continue
        if problems:
            continue
        tasks.add(values["task"])
        _widen(report, values["finished_at"])
        if count_existing:
            chunk.append(values)
        if len(chunk) == CHUNK:
            report.already_there += len(_existing(chunk))
            chunk = []
    if problems:
        raise ImportFailed(problems, more)
    report.already_there += len(_existing(chunk))
    report.added = report.rows - report.already_there
    known = set(Task.objects.filter(name__in=tasks).values_list("name", flat=True))
    report.new_tasks = sorted(tasks - known)
    return report


def import_file(
    path: Path, fmt: str | None = None, time_zone: dt.tzinfo | None = None, dry_run: bool = False
) -> Report:
    """Validate the whole file, then (unless dry_run) write it; see the module doc."""
    fmt = file_format(path, fmt)
    resource = LegacyMetricsResource(time_zone=time_zone)
    report = validate(path, fmt, resource, count_existing=dry_run)
    if dry_run:
        return report
    ensure_tasks(report.new_tasks)
    task_ids = dict(Task.objects.values_list("name", "id"))
    report.added = report.already_there = 0
    chunk: list[dict[str, Any]] = []
    for values in cleaned(path, fmt, resource):
        chunk.append(values)
        if len(chunk) == CHUNK:
            _write(chunk, task_ids, report)
            chunk = []
    _write(chunk, task_ids, report)
    if report.added and report.first is not None:
        history.rebuild(since=report.first)
    return report


def _widen(report: Report, moment: dt.datetime) -> None:
    report.first = moment if report.first is None else min(report.first, moment)
    report.last = moment if report.last is None else max(report.last, moment)


def _existing(chunk: list[dict[str, Any]]) -> set[tuple[str, int]]:
    if not chunk:
        return set()
    ids = {values["run_id"] for values in chunk}
    rows = Execution.objects.filter(run_id__in=ids).values_list("run_id", "attempt")
    keys = set(rows)
    return {(v["run_id"], v["attempt"]) for v in chunk} & keys


# Field types whose Python values the database drivers take as they are.
PLAIN_FIELDS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.FloatField,
    models.BooleanField,
    models.ForeignKey,
)


class Inserter:
    """One multi-row INSERT of Execution rows, duplicates ignored (see the module doc)."""

    def __init__(self) -> None:
        fields = [f for f in Execution._meta.concrete_fields if not f.primary_key]
        self.names = [f.attname for f in fields]
        self.defaults = {f.attname: f.get_default() for f in fields}
        # A callable default (timezone.now...) is called for each row that lacks the value.
        self.callables = [f for f in fields if f.has_default() and callable(f.default)]
        self.prepare = [None if isinstance(f, PLAIN_FIELDS) else f.get_db_prep_save for f in fields]
        quote = connection.ops.quote_name
        start = connection.ops.insert_statement(on_conflict=OnConflict.IGNORE)
        columns = ", ".join(quote(f.column) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        self.sql = f"{start} {quote(Execution._meta.db_table)} ({columns}) VALUES ({marks})"

    def row(self, values: dict[str, Any]) -> list[Any]:
        for field in self.callables:
            if field.attname not in values:
                values[field.attname] = field.get_default()
        full = [values.get(name, self.defaults[name]) for name in self.names]
        for i, prepare in enumerate(self.prepare):
            if prepare is not None:
                full[i] = prepare(full[i], connection)
        return full

    def insert(self, rows: list[list[Any]]) -> int:
        """Insert what is not there yet (the unique run_id and attempt); returns how many."""
        with connection.cursor() as cursor:
            cursor.executemany(self.sql, rows)
            return max(int(cursor.rowcount), 0)


def _write(chunk: list[dict[str, Any]], task_ids: dict[str, int], report: Report) -> None:
    if not chunk:
        return
    inserter = _inserter()
    seen: set[tuple[str, int]] = set()
    new = []
    for values in chunk:
        key = (values["run_id"], values["attempt"])
        if key not in seen:
            seen.add(key)
            new.append(inserter.row({**values, "task_id": task_ids[values["task"]]}))
    with transaction.atomic():
        added = inserter.insert(new)
    report.added += added
    report.already_there += len(chunk) - added


_inserters: dict[str, Inserter] = {}


def _inserter() -> Inserter:
    if connection.alias not in _inserters:
        _inserters[connection.alias] = Inserter()
    return _inserters[connection.alias]
