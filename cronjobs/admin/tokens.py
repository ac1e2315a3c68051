"""Admin for API tokens. Adding a token generates its secret and shows it once, in the body of
the page that answers the add form (never in a message, which travels in a cookie); only the
hash is stored, so nothing shows it again. A token acts with its creator's permissions
(cronjobs.actions.Actor.require) and dies with it: once the creator is deleted, deactivated or
no longer staff the token answers 401. Only a user who may change tasks can make a read-write
one, and `read_only` cannot be changed after creation. A token with no creator can only be made
by `manage.py apitoken create` without --user; the list says so."""

from __future__ import annotations

import weakref

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from cronjobs import actions, tokens
from cronjobs.admin.display import ObjectPagesMixin
from cronjobs.models import ApiToken

# The secret an add request made, for that request's response_add; an entry goes with its
# request.
_new_secrets: weakref.WeakKeyDictionary[HttpRequest, str] = weakref.WeakKeyDictionary()


@admin.register(ApiToken)
class ApiTokenAdmin(ObjectPagesMixin[ApiToken], admin.ModelAdmin[ApiToken]):
    list_display = (
        "name",
        "prefix",
        "read_only",
        "acts_for",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("read_only", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "acts_for", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)
    list_select_related = ("created_by",)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, object] | None = None
    ) -> HttpResponse:
        subtitle = (
            "A token acts with its creator's permissions and stops working (401) when the "
            "creator is deleted, deactivated or no longer staff. Tokens made here have you as "
            "creator; a token with no creator can only be made on the host with "
            "manage.py apitoken create (without --user)."
        )
        return super().changelist_view(request, {"subtitle": subtitle, **(extra_context or {})})

    @admin.display(description="acts for")
    def acts_for(self, obj: ApiToken) -> str:
        if obj.created_by is not None:
            name = obj.created_by.get_username()
            return f"{name} (no longer active staff: token dead)" if obj.owner_gone else name
        if obj.from_command_line:
            return "the host's operator (manage.py apitoken create)"
        return "nobody: its creator was deleted (token dead)"

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return (
            ("name", "read_only") if obj is None else ("name", "read_only", *self.readonly_fields)
        )

    def get_readonly_fields(
        self, request: HttpRequest, obj: ApiToken | None = None
    ) -> tuple[str, ...]:
        if obj is not None or not request.user.has_perm(actions.TASK_PERMISSION):
            return ("read_only", *self.readonly_fields)  # fixed at creation; read-only default
        return self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm[ApiToken], change: bool
    ) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        user = request.user
        if not user.is_authenticated:  # the admin lets only staff this far
            raise PermissionDenied
        if not obj.read_only and not user.has_perm(actions.TASK_PERMISSION):
            raise PermissionDenied(f"a read-write token needs {actions.TASK_PERMISSION}")
        secret = tokens.new_secret()
        tokens.set_secret(obj, secret)
        obj.created_by = user
        super().save_model(request, obj, form, change)
        _new_secrets[request] = secret

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The secret in this page's body, once; no redirect, no message cookie."""
        context = {
            **self.admin_site.each_context(request),
            "title": f"API token {obj.name!r} created",
            "token": obj,
            "secret": _new_secrets.pop(request),
            "opts": self.opts,
        }
        response = TemplateResponse(request, "admin/cronjobs/apitoken/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).")
