"""SQL statement counts for bench/flagged_jobs.py, kept out of the product: an app the benchmark
installs through EXTRA_APPS=bench.querycount (see apps.py)."""
