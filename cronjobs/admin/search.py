"""The execution history's search box: what a term means, and the index that answers it.

A term is read as the first of these that names something anywhere in the history; a
qualifier (`run:`, `task:`, `host:`, `error:`) before the term picks the kind instead:

1. a run id: 6 to 32 hex digits, the beginning of a run id (the `run_id` index);
2. a task name: any part of a task's name, looked up in the small task table; the history is
   then filtered by those tasks, as the task filter does;
3. a host: the beginning of a host name (the `(host, started_at)` index);
4. error text: the newest TEXT_MATCHES attempts whose error summary has every word of the term
   (its first MAX_WORDS words). Among the newest SCAN_ROWS attempts a word may appear anywhere
   (`lock` finds `deadlock`): they are read one by one, newest first. Older attempts are
   searched on MySQL/MariaDB only, through the FULLTEXT index of migration 0012, where a word
   finds the words it begins (`dead` finds `deadlock`, `lock` does not); words that index does
   not hold (shorter than innodb_ft_min_token_size, 3 by default, or an InnoDB stopword such
   as `in` or `the`) must still appear somewhere, and a term of such words only is not looked
   for there. SQLite has no such index, so there older attempts are not searched.

A term is cut at MAX_TERM characters.

Why two ways for error text: the index answers a rare or absent word in milliseconds at any
size of history, but reads every attempt that has the word (some 10 us each: seconds for
`failed` in ten million attempts). Such a word has its TEXT_MATCHES newest matches among the
newest attempts, and reading SCAN_ROWS of those costs about 0.1 s; the index is asked only
when they hold fewer.

On SQLite the run id and host probes read their whole index (0.15 s a million rows): SQLite
serves LIKE 'term%' from an index only under PRAGMA case_sensitive_like or on a NOCASE
column, and Django's columns are neither. MySQL looks the prefix up.

Why one kind and not all at once: an OR across kinds can use none of the indexes (a FULLTEXT
index takes no part in an index merge), so it would read the whole table. The probes that
decide the kind are index lookups.

The term reaches the database only as a query parameter, and MATCH ... AGAINST receives only
its words (letters, digits, underscores), so no input is read as a boolean-mode operator.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Lookup, Max, Q, QuerySet
from django.db.models.sql.compiler import SQLCompiler

from cronjobs.models import Execution, Task

RUN_ID_RE = re.compile(r"^[0-9a-f]{6,32}$")
# Runs of letters, digits and underscores: how InnoDB's full-text parser splits text into words.
WORD_RE = re.compile(r"\w+")
MAX_WORDS = 8
# Longer terms are cut: SQLite refuses LIKE patterns over 50,000 bytes, and no run id, task,
# host or one-line error summary is that long.
MAX_TERM = 1000
TEXT_MATCHES = 1000
SCAN_ROWS = 100_000
# InnoDB's default stopwords (INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD). The index holds
# none of them, and a word the query requires but the index lacks matches no row at all.
STOPWORDS = frozenset(
    "a about an are as at be by com de en for from how i in is it la of on or that the this "  # noqa: SIM905
    "to was what when where who will with und www".split()
)
MAX_INDEXED_WORD = 84  # innodb_ft_max_token_size: longer words are not indexed


def matching(queryset: QuerySet[Execution], term: str) -> QuerySet[Execution]:
    """The history rows `term` names (see the module doc), with the changelist's filters kept."""
    kind, text = parse(term)
    if not text:
        return queryset
    if kind:
        found = FINDERS[kind](queryset, text)
        return queryset.none() if found is None else found
    for finder in (by_run_id, by_task, by_host):
        found = finder(queryset, text)
        if found is not None:
            return found
    return by_error_text(queryset, text)


def help_text() -> str:
    """The line under the search box."""
    if connection.vendor == "mysql":
        scope = f"anywhere in the newest {SCAN_ROWS:,}, as word beginnings in older ones"
    else:
        scope = f"among the newest {SCAN_ROWS:,}"
    return (
        "A run id (6+ hex digits), a task name or part of one, the beginning of a host name, "
        f"or else words of the error text (the newest {TEXT_MATCHES:,} attempts with them all, "
        f"{scope}). Start with run:, task:, host: or error: to choose one."
    )


def parse(term: str) -> tuple[str | None, str]:
    """A qualifier (`host:web1`) and the text after it, or no qualifier and the whole term."""
    term = term.strip()[:MAX_TERM]
    qualifier, colon, text = term.partition(":")
    if colon and qualifier.lower() in FINDERS:
        return qualifier.lower(), text.strip()
    return None, term


def by_run_id(queryset: QuerySet[Execution], text: str) -> QuerySet[Execution] | None:
    prefix = text.lower()
    if not RUN_ID_RE.match(prefix):
        return None
    # istartswith is LIKE 'term%', which MySQL serves from the run_id index; the
    # case-sensitive startswith is LIKE BINARY, which it cannot. Run ids are lower-case.
    return _if_any(queryset, Q(run_id__istartswith=prefix))


def by_task(queryset: QuerySet[Execution], text: str) -> QuerySet[Execution] | None:
    task_ids = list(Task.objects.filter(name__icontains=text).values_list("pk", flat=True))
    return queryset.filter(task_id__in=task_ids) if task_ids else None


def by_host(queryset: QuerySet[Execution], text: str) -> QuerySet[Execution] | None:
    return _if_any(queryset, Q(host__istartswith=text))


def by_error_text(queryset: QuerySet[Execution], text: str) -> QuerySet[Execution]:
    """The newest TEXT_MATCHES matches as a list of primary keys: the changelist's queries (the
    page, the next-page probe, the date hierarchy's ends) then read at most that many rows
    instead of searching again."""
    words = WORD_RE.findall(text)[:MAX_WORDS]
    contains = [Q(error__icontains=word) for word in words or [text]]
    # Newest first along the primary key: ordered by started_at, the page would fetch every
    # candidate at random before sorting.
    newest = _newest_pks(_recent(queryset).filter(*contains))
    if len(newest) < TEXT_MATCHES and connection.vendor == "mysql":
        older = _fulltext(queryset, words, contains)
        if older is not None:
            newest = sorted({*newest, *_newest_pks(older)}, reverse=True)[:TEXT_MATCHES]
    return queryset.filter(pk__in=newest)


FINDERS: dict[str, Callable[[QuerySet[Execution], str], QuerySet[Execution] | None]] = {
    "run": by_run_id,
    "task": by_task,
    "host": by_host,
    "error": by_error_text,
}


class FullTextMatch(Lookup[str]):
    """`MATCH (column) AGAINST (query IN BOOLEAN MODE)`, answered by a FULLTEXT index; a filter
    on its own: `queryset.filter(FullTextMatch(F("error"), "+disk* +full*"))`."""

    lookup_name = "fulltext_match"

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[str | int, ...]]:
        column, column_params = self.process_lhs(compiler, connection)
        query, query_params = self.process_rhs(compiler, connection)
        return f"MATCH ({column}) AGAINST ({query} IN BOOLEAN MODE)", (
            *column_params,
            *query_params,
        )


def _fulltext(
    queryset: QuerySet[Execution], words: list[str], contains: list[Q]
) -> QuerySet[Execution] | None:
    """Rows with every word, found through the FULLTEXT index; None when the index holds none
    of the words."""
    indexed = [word for word in words if _indexed(word)]
    if not indexed:
        return None
    # Every word required (+), each as the beginning of a word (*); the words the index lacks
    # are checked as plain text among the rows it finds.
    query = " ".join(f"+{word}*" for word in indexed)
    return queryset.filter(FullTextMatch(F("error"), query), *contains)


def _indexed(word: str) -> bool:
    return _min_indexed_word() <= len(word) <= MAX_INDEXED_WORD and word.lower() not in STOPWORDS


@functools.cache
def _min_indexed_word() -> int:
    """The server's innodb_ft_min_token_size: shorter words are not in the index."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@innodb_ft_min_token_size")
        return int(cursor.fetchone()[0])


def _recent(queryset: QuerySet[Execution]) -> QuerySet[Execution]:
    """The queryset limited to the newest SCAN_ROWS attempts. Ids only grow and pruning
    removes the oldest rows, so the newest id tells where they begin (one index lookup)."""
    newest = Execution.objects.aggregate(newest=Max("pk"))["newest"] or 0
    return queryset.filter(pk__gt=newest - SCAN_ROWS)


def _newest_pks(matches: QuerySet[Execution]) -> list[int]:
    return list(matches.order_by("-pk").values_list("pk", flat=True)[:TEXT_MATCHES])


def _if_any(queryset: QuerySet[Execution], condition: Q) -> QuerySet[Execution] | None:
    """The queryset filtered by `condition` if any attempt at all meets it (one index probe,
    whatever the changelist's other filters), else None."""
    if Execution.objects.filter(condition).exists():
        return queryset.filter(condition)
    return None
