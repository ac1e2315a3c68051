from django.apps import AppConfig


class QueryCountConfig(AppConfig):
    name = "bench.querycount"
    label = "bench_querycount"

    def ready(self) -> None:
        from bench.querycount.counting import count_every_job

        count_every_job()
