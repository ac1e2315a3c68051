"""Login throttling (django-axes, docs/deploy.md "Login throttling"): who the client is behind
the proxies, and the lockout policy.

- The client is the address `FORWARDED_PROXY_COUNT` hops from the right of `X-Forwarded-For`
  (each proxy appends the address it was connected from, so the right part is written by our
  proxies and the left part by whoever sent the request); with fewer entries, or a count of 0,
  the connecting address. django-ipware's `proxy_count` wants the header to hold exactly the
  expected number of entries and answers no address at all when a client adds its own, so axes
  is given `client_address` instead (`AXES_CLIENT_IP_CALLABLE`).
- A login is refused when its (username, address) pair failed `AXES_FAILURE_LIMIT` times, or its
  address failed `AXES_ADDRESS_FAILURE_LIMIT` times across all usernames. A username is never
  locked for everyone: failures from other addresses do not count against this one.
- A successful login forgets the failures of its own pair only.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.handlers.database import AxesDatabaseHandler  # type: ignore[import-untyped]
from axes.helpers import get_failure_limit  # type: ignore[import-untyped]
from axes.models import AccessAttempt  # type: ignore[import-untyped]
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The real client's address behind FORWARDED_PROXY_COUNT proxies (see the module)."""
    hops = settings.FORWARDED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    entries = [entry.strip() for entry in forwarded.split(",")] if forwarded else []
    if hops and len(entries) >= hops:
        address = _valid(entries[-hops])
        if address is not None:
            return address
    return _valid(request.META.get("REMOTE_ADDR", ""))


def _valid(text: str) -> str | None:
    """The address in its canonical spelling, or None for anything that is not one."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


class LoginThrottle(AxesDatabaseHandler):  # type: ignore[misc]
    """axes' database handler with the policy of the module docstring."""

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        """The pair's failures, or the limit itself while the address is locked out (axes
        compares one number with AXES_FAILURE_LIMIT). The attempts come in the order of
        settings.AXES_LOCKOUT_PARAMETERS: the pair, then the address."""
        pair, address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if address >= settings.AXES_ADDRESS_FAILURE_LIMIT:
            return max(int(pair), int(get_failure_limit(request, credentials)))
        return int(pair)

    def user_logged_in(self, sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
        super().user_logged_in(sender, request, user, **kwargs)
        address = getattr(request, "axes_ip_address", None)  # set by axes' middleware
        AccessAttempt.objects.filter(username=user.get_username(), ip_address=address).delete()
