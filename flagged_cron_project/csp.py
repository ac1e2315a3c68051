"""The Content-Security-Policy header (settings.CONTENT_SECURITY_POLICY) on every response that
does not set its own. The policy allows no inline script or style: a page's JavaScript and CSS
live in static files (cronjobs/static/cronjobs/), loaded with <script src> and <link>, and
charts style their SVG with presentation attributes (docs/deploy.md, "Content-Security-Policy")."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
