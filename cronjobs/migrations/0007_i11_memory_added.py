"""Execution.memory_added_bytes (function tasks: the peak over the worker's baseline), and the
seed's views recreated so `memory_used` (and its averages and maxima) is the job's own figure:
COALESCE(memory_added_bytes, peak_rss_bytes), like Execution.job_memory_bytes."""

import importlib

from django.db import migrations, models

views = importlib.import_module("cronjobs.migrations.0003_compatibility_views")
JOB_MEMORY = "COALESCE(e.memory_added_bytes, e.peak_rss_bytes)"


def job_memory_views(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for sql in views.VIEWS.values():
        schema_editor.execute(sql.replace("e.peak_rss_bytes", JOB_MEMORY))


class Migration(migrations.Migration):
    dependencies = [
        ("cronjobs", "0006_cache_table"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="memory_added_bytes",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        # MySQL commits DDL implicitly; RunPython must not wrap it in a transaction.
        migrations.RunPython(
            job_memory_views, views.create_views, atomic=False, elidable=False
        ),
    ]
