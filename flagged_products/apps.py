from django.apps import AppConfig


class FlaggedProductsConfig(AppConfig):
    name = "flagged_products"
    verbose_name = "Flagged products"
    default_auto_field = "django.db.models.BigAutoField"
