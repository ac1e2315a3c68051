from django.apps import AppConfig


class NoopAppConfig(AppConfig):
    name = "bench.noopapp"
    label = "bench_noopapp"

    def ready(self) -> None:
        from bench.noopapp import writelog

        writelog.install()  # only when bench/settings.py's BENCH_WRITE_LOG names a file
