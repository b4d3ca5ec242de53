"""The evaluation library behind ``python -m jobs.evaluate``: candidates, distributed
generation with a resumable answer cache, metrics with bootstrap intervals, and the report."""
