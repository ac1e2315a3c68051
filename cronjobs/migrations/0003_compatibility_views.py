"""The seed's monitoring views on MySQL/MariaDB (docs/api.md, "SQL views"), as the seed defined
them: cronjobs.legacy.sql_views.SEED_VIEWS, where their SQL and its reasons live. Later
migrations (0007, 0009) and every `migrate` replace them with today's definitions. SQLite gets
no views: the seed's SQL is MySQL's dialect.
"""

from django.db import migrations

from cronjobs.legacy.sql_views import SEED_VIEWS as VIEWS


def create_views(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for sql in VIEWS.values():
        schema_editor.execute(sql)


def drop_views(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for name in VIEWS:
        schema_editor.execute(f"DROP VIEW IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("cronjobs", "0002_apitoken"),
    ]

    # MySQL commits DDL implicitly; RunPython must not wrap it in a transaction.
    operations = [migrations.RunPython(create_views, drop_views, atomic=False, elidable=False)]
