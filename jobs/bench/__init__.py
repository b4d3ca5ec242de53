"""The serving load benchmark behind ``python -m jobs.bench_serve``: what vLLM's serving
benchmark measures (TTFT, TPOT, inter-token latency, end-to-end latency, throughput) at
several concurrency levels, with the replica count over time."""
