"""Tokens die with their creator (issue 25). A creator-less token made before this migration
cannot be told apart from one whose creator was deleted (both have created_by NULL), so none is
marked as made on the command line: such tokens stop working and are made again with
`manage.py apitoken create` (docs/api.md, "Tokens")."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cronjobs", "0013_task_retry_delay_decimal"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="from_command_line",
            field=models.BooleanField(
                default=False,
                editable=False,
                help_text=(
                    "Made by manage.py apitoken create without --user: acts for the host's "
                    "operator"
                ),
            ),
        ),
    ]
