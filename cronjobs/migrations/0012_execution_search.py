"""The indexes behind the history's search box (cronjobs/admin/search.py): `(host, started_at)`
for a host, and on MySQL/MariaDB a FULLTEXT index on the error summary for error text. Django
cannot declare a FULLTEXT index, so a RunPython adds it where the database has one; SQLite gets
none (the search scans the newest rows there instead).

The first FULLTEXT index of a table makes InnoDB rebuild the table (it adds its hidden
FTS_DOC_ID column), and writes to the history wait until it is done (LOCK=NONE is refused):
about 40 seconds per million executions on a small machine (docs/deploy.md).
"""

from django.db import migrations, models

FULLTEXT = "execution_error_fulltext"


def add_fulltext(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"CREATE FULLTEXT INDEX {FULLTEXT} ON cronjobs_execution (error)")


def drop_fulltext(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"DROP INDEX {FULLTEXT} ON cronjobs_execution")


class Migration(migrations.Migration):
    dependencies = [
        ("cronjobs", "0011_rollups"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(fields=["host", "started_at"], name="execution_host_started"),
        ),
        migrations.RunPython(add_fulltext, drop_fulltext, atomic=False),
    ]
