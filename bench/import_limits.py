#!/usr/bin/env python3
"""The admin import's limits (issue 25, docs/benchmarks.md "The admin import's limits"): what
an oversized upload costs a web worker before it is refused, side by side with the old path,
where django-import-export parsed the whole file into a dataset before the 20,000-row check.

    .venv/bin/python bench/import_limits.py [--rows 200000] [--repeat 3]

Writes a Smart Cron V2 metrics CSV of `--rows` rows and an XLSX of a fifth as many (XLSX is
slow to write and read) to a temporary directory, then, each the median of `--repeat` runs, in
process (no database is touched), the upload read from disk as Django hands over any upload
over 2.5 MB:

- old: `create_dataset` of the whole file, as the import form did before refusing it;
- rows: `import_limits.problem` with the size limit lifted, so the rows are counted while
  streaming and the count stops at the first row past 20,000;
- size: `import_limits.problem` as deployed (5 MB), which refuses the CSV by its size alone.

Peak Python memory of each (tracemalloc) is printed beside its time.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

HEADER = ["id", "task_name", "success", "execution_time", "memory_used", "error_message",
          "retry_count", "created_at"]  # fmt: skip


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            failed = i % 33 == 0
            writer.writerow(
                [i, "flagged_products_refresh_store_stats", 0 if failed else 1, 4.52, 33554432,
                 "Timeout after 180s" if failed else "", 0, "2026-11-20 02:00:05"]
            )  # fmt: skip


def write_xlsx(path: Path, rows: int) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(HEADER)
    for i in range(rows):
        sheet.append([i, "flagged_products_x", 1, 4.52, 33554432, "", 0, "2026-11-20 02:00:05"])
    book.save(path)


def measure(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median seconds and the peak traced MiB of one run."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20


def bench_file(name: str, path: Path, file_format: type, rows: int, repeat: int) -> None:
    from django.core.files.uploadedfile import UploadedFile

    from cronjobs.legacy import import_limits
    from cronjobs.legacy.resource import LegacyMetricsResource

    data = path.read_bytes()

    def old() -> object:
        fmt = file_format()
        if not fmt.is_binary():
            fmt.encoding = "utf-8-sig"
        return fmt.create_dataset(data)

    def problem() -> str:
        with UploadedFile(path.open("rb"), name=path.name, size=len(data)) as upload:
            return import_limits.problem(upload, file_format)

    def counted() -> str:
        limit = LegacyMetricsResource.ADMIN_BYTE_LIMIT
        LegacyMetricsResource.ADMIN_BYTE_LIMIT = len(data) + 1
        try:
            return problem()
        finally:
            LegacyMetricsResource.ADMIN_BYTE_LIMIT = limit

    assert "more than" in counted(), "the file should be over the row limit"
    paths = [("old: parse the whole file", old), ("rows: count until 20,001", counted)]
    if len(data) > LegacyMetricsResource.ADMIN_BYTE_LIMIT:
        paths.append(("size: refused by its size", problem))
    for label, work in paths:
        seconds, peak = measure(work, repeat)
        print(
            f"{name:<6} {rows:>8,} {len(data) / 2**20:>7.1f} MB  {label:<28} "
            f"{seconds * 1000:>9.1f} ms {peak:>6.1f} MiB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from import_export.formats import base_formats

    with tempfile.TemporaryDirectory() as tmp:
        csv_path, xlsx_path = Path(tmp) / "metrics.csv", Path(tmp) / "metrics.xlsx"
        write_csv(csv_path, args.rows)
        write_xlsx(xlsx_path, args.rows // 5)
        print(f"{'file':<6} {'rows':>8} {'size':>9}  {'path':<28} {'time':>12} {'peak':>10}")
        bench_file("CSV", csv_path, base_formats.CSV, args.rows, args.repeat)
        bench_file("XLSX", xlsx_path, base_formats.XLSX, args.rows // 5, args.repeat)


if __name__ == "__main__":
    main()
