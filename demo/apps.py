from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo-only commands (seed_demo, seed_history, demo_user) and the data they write.

    Installed by `make demo` through EXTRA_APPS=demo, and by the test and benchmark settings that
    seed data; a production settings load leaves it out, so these commands do not exist there."""

    name = "demo"
    verbose_name = "Demo data"
