from django.apps import AppConfig


class NoopAppConfig(AppConfig):
    name = "bench.noopapp"
    label = "bench_noopapp"
