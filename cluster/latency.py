"""The one latency definition every report uses (README, bench.md, the cost report).

Latency is the **streamed end-to-end time** of a chat completion: from sending the request to
receiving the last token of the streamed answer, as the client sees it. A figure is always the
p50 and the p95 over the requests of one benchmark level, with that level's number of
concurrent users and output length stated beside it. TTFT and TPOT are reported too, as parts
of it (queue + prefill, and each decode step), never in its place.
"""

from __future__ import annotations

DEFINITION = (
    "streamed end-to-end latency (request sent to last token received), p50 / p95 over the "
    "requests at the stated number of concurrent users"
)


def phrase(p50_s: float, p95_s: float, users: int, max_tokens: int | None = None) -> str:
    """``"4.98 s p50 / 6.10 s p95 at 1 user, 48 output tokens"``."""
    tokens = f", {max_tokens} output tokens" if max_tokens else ""
    who = "1 user" if users == 1 else f"{users} concurrent users"
    return f"{p50_s:.2f} s p50 / {p95_s:.2f} s p95 at {who}{tokens}"
