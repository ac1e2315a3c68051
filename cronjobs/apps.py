from typing import Any

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class CronjobsConfig(AppConfig):
    name = "cronjobs"
    verbose_name = "Cron jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for its side effect: registering the task-declaration system check. The
        # admin pages register themselves when the admin autodiscovers cronjobs.admin.
        from cronjobs import checks  # noqa: F401

        post_migrate.connect(_sync_after_migrate, sender=self)


class ControlRoomAdminConfig(admin_apps.AdminConfig):
    """Django's admin with the control room's site: the overview as its index and the Cron jobs
    app first (cronjobs/views/overview.py). Named as a string: the site's module imports models,
    which are not loaded yet when this class is."""

    default = False  # CronjobsConfig stays the one `cronjobs` means in INSTALLED_APPS
    default_site = "cronjobs.views.overview.ControlRoomSite"


def _sync_after_migrate(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from django.db import connections

    from cronjobs.legacy import sql_views
    from cronjobs.supervisor.sync import sync_all

    if using == "default":
        sync_all()
        # The compatibility views carry CRONJOBS_LEGACY_PREFIX: a changed prefix applies here,
        # once migration 0009 has made them (never on a database migrated back before it).
        connection = connections[using]
        if "smart_cron_alerts" in connection.introspection.table_names(include_views=True):
            with connection.schema_editor(atomic=False) as editor:
                sql_views.create(editor)
