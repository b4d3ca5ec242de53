"""A stream whose replica is lost ends with an error event; a replica whose engine is stuck
with work waiting fails its health check. No Ray cluster, no vLLM: the ingress's routes in
front of stand-in replicas (tests/serve/fake_replicas.py), the server class with a fake clock."""

import asyncio
import json

import pytest

from serve.faults import ProgressWatchdog


def test_a_stream_whose_replica_is_lost_ends_with_an_error_event(monkeypatch):
    from tests.serve.fake_replicas import (
        FakeModel,
        chunks,
        ingress_client,
        replica_lost,
        stream_chunk,
    )

    first = stream_chunk("Hel")
    model = FakeModel(chat=chunks(first, then=replica_lost()))  # its node went away
    client = ingress_client(monkeypatch, {"tiny": model})
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    resp = client.post("/v1/chat/completions", json=body, headers={"x-request-id": "r1"})
    events = [e.removeprefix("data: ") for e in resp.text.strip().split("\n\n")]
    assert resp.status_code == 200 and first.startswith("data: " + events[0])
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error" and error["code"] == "stream_interrupted"
    assert "request id r1" in error["message"] and "actor" not in error["message"]
    assert len(model.calls) == 1  # part of the answer was sent: never retried


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
