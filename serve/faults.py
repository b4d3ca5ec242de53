"""Two faults the Serve app answers instead of hanging or cutting off silently.

- A stream whose replica is lost half-way (its node went away, the engine died) ends with an
  OpenAI-shaped error event, ``data: {"error": {...}}``, then ``data: [DONE]``: a client sees
  why the answer stopped instead of a connection closed mid-answer.
- A replica whose engine makes no progress while requests wait fails its health check
  (:class:`ProgressWatchdog`), so Serve replaces it; a hung engine otherwise keeps its requests
  forever and Serve keeps routing new ones to it.

No Ray or vLLM needed to test them: a generator and a clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from serve.errors import error_event

log = logging.getLogger("ray.serve")


async def stream_with_error_event(
    chunks: AsyncIterator[Any], request_id: str = "unknown"
) -> AsyncIterator[Any]:
    """``chunks`` unchanged; if they fail part-way, an error event and ``[DONE]`` instead of an
    aborted response (the status line, 200, was sent with the first chunk). The event says
    what happened and the request id; the exception, with its traceback, goes to the log."""
    try:
        async for chunk in chunks:
            yield chunk
    except Exception as exc:  # the replica died, the engine failed: the client is told
        log.warning("request %s: stream ended by an error", request_id, exc_info=exc)
        yield error_event(
            "the model replica failed while streaming; the answer is incomplete (request id "
            f"{request_id}). Retry the request",
            "stream_interrupted",
        )
        yield "data: [DONE]\n\n"


class ProgressWatchdog:
    """Counts the requests a replica is working on and when any of them last produced output;
    :meth:`problem` says when work is waiting and nothing moved for ``stall_s`` seconds."""

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic):
        self.stall_s, self.clock = stall_s, clock
        self.pending = 0
        self.last_progress = clock()

    async def watch(self, outputs: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """``outputs`` unchanged, counted as one pending request until they end."""
        if self.pending == 0:
            self.last_progress = self.clock()  # an idle replica starts its clock afresh
        self.pending += 1
        try:
            async for item in outputs:
                self.last_progress = self.clock()
                yield item
        finally:
            self.pending -= 1

    def problem(self) -> str | None:
        """Why the replica is unhealthy, or None."""
        idle = self.clock() - self.last_progress
        if self.pending and idle > self.stall_s:
            return (
                f"{self.pending} request(s) in flight and no output for {idle:.0f} s (limit "
                f"health_stall_s={self.stall_s:.0f}): the engine is stuck; Serve replaces this "
                "replica. Raise health_stall_s if single non-streamed answers take longer"
            )
        return None
