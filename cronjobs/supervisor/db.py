"""Connection care for a supervisor that may sit idle for hours while its job runs."""

from django.db import connection


def ensure_usable_connection() -> None:
    """MySQL drops connections idle for longer than wait_timeout, and Django only notices after
    a query has failed. Ping before reusing the supervisor's connection; reconnect if gone."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()
