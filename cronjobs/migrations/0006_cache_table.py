from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # The table behind settings.CACHES (DatabaseCache); a no-op for other cache backends.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("cronjobs", "0005_outcome_tallies")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
