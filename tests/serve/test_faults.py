"""A stream whose replica is lost ends with an error event; a replica whose engine is stuck
with work waiting fails its health check. No Ray cluster, no vLLM: the app's ingress and server
classes are driven with stand-in generators and a fake clock."""

import asyncio
import json

import pytest
from ray.exceptions import RayActorError

from serve.faults import ProgressWatchdog


async def _replica_dies_after(chunks):
    for chunk in chunks:
        yield chunk
    raise RayActorError()  # the replica's node went away mid-answer


def _events(chunks):
    return [c.removeprefix("data: ").strip() for c in chunks]


def test_a_stream_whose_replica_is_lost_ends_with_an_error_event(monkeypatch):
    from ray.llm._internal.serve.core.ingress.ingress import OpenAiIngress
    from starlette.responses import StreamingResponse

    from serve.app import OnPremIngress

    first = ['data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n']

    async def ray_path(self, body, call_method, raw_request=None):
        return StreamingResponse(_replica_dies_after(first), media_type="text/event-stream")

    monkeypatch.setattr(OpenAiIngress, "_process_llm_request", ray_path)
    ingress = OnPremIngress.__new__(OnPremIngress)  # no Serve: only the request path is used

    async def run():
        resp = await ingress._process_llm_request(object(), "chat")
        return [chunk async for chunk in resp.body_iterator]

    chunks = asyncio.run(run())
    events = _events(chunks)
    assert chunks[0] == first[0] and events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error" and error["code"] == "stream_interrupted"
    assert "RayActorError" in error["message"]


def test_a_whole_stream_passes_unchanged():
    from serve.faults import stream_with_error_event

    async def fine():
        for c in ["data: 1\n\n", "data: [DONE]\n\n"]:
            yield c

    async def run():
        return [c async for c in stream_with_error_event(fine())]

    assert asyncio.run(run()) == ["data: 1\n\n", "data: [DONE]\n\n"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_watchdog_flags_work_waiting_without_progress_only():
    clock = Clock()
    dog = ProgressWatchdog(stall_s=60, clock=clock)
    clock.now += 3600
    assert dog.problem() is None  # idle for an hour: nothing waits, nothing is wrong
    release = asyncio.Event()

    async def engine(outputs):
        for o in outputs:
            await release.wait()
            yield o

    async def scenario():
        stream = dog.watch(engine(["a", "b"]))
        task = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        assert dog.pending == 1 and dog.problem() is None
        clock.now += 59
        assert dog.problem() is None
        clock.now += 2  # 61 s with a request in flight and no output
        problem = dog.problem()
        assert "1 request(s) in flight and no output for 61 s" in problem
        assert "health_stall_s=60" in problem
        release.set()
        assert await task == "a"
        assert dog.problem() is None  # output resets the clock
        assert [o async for o in stream] == ["b"]
        assert dog.pending == 0
        clock.now += 1000
        assert dog.problem() is None

    asyncio.run(scenario())


def test_the_replica_health_check_fails_when_the_engine_is_stuck():
    from serve.app import LLMServer

    clock = Clock()
    server = LLMServer.__new__(LLMServer)  # no engine: only the health check is used
    server.engine = None
    server.progress = ProgressWatchdog(stall_s=30, clock=clock)
    asyncio.run(server.check_health())  # healthy
    server.progress.pending = 2
    clock.now += 31
    with pytest.raises(RuntimeError, match="2 request\\(s\\) in flight and no output for 31 s"):
        asyncio.run(server.check_health())
