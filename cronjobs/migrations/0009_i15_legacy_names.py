"""Smart Cron V2 compatibility (docs/migrating.md): the views show task_name with
CRONJOBS_LEGACY_PREFIX, a `smart_cron_alerts` view, and the `imported` trigger of executions
loaded by `import_legacy_metrics`."""

import importlib

from django.db import migrations, models

memory_views = importlib.import_module("cronjobs.migrations.0007_i11_memory_added")


def legacy_views(apps, schema_editor):
    from cronjobs.legacy import sql_views

    sql_views.create(schema_editor)


def drop_alerts_view(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    schema_editor.execute("DROP VIEW IF EXISTS smart_cron_alerts")
    memory_views.job_memory_views(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("cronjobs", "0008_i13_alert_policies"),
    ]

    operations = [
        migrations.AlterField(
            model_name="execution",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("cron", "Cron"),
                    ("manual", "Manual"),
                    ("admin", "Admin"),
                    ("api", "Api"),
                    ("imported", "Imported"),
                ],
                default="manual",
                max_length=10,
            ),
        ),
        # MySQL commits DDL implicitly; RunPython must not wrap it in a transaction.
        migrations.RunPython(legacy_views, drop_alerts_view, atomic=False, elidable=False),
    ]
