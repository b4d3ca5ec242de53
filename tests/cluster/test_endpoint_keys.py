"""The platform's API key goes only to the platform's own address; a foreign endpoint gets the
key its config names, or none; a key never crosses the network over plain http. Checked on the
pure resolver, then end to end on the evaluation job and the benchmark against a local HTTP
server that records the Authorization header it was sent."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from cluster.endpoint_keys import EndpointKeyError, endpoint_key, platform_origins

PLATFORM_KEY = "platform-key-0123456789abcdef0123456789abcdef"
ENV = {"ONPREM_API_KEY": PLATFORM_KEY, "OPENAI_API_KEY": "sk-cloud"}


def test_the_platform_is_the_local_serve_address_and_the_listed_urls(tmp_path):
    serve = tmp_path / "config.yaml"
    serve.write_text("http_options: {host: 127.0.0.1, port: 8000}\n")
    listed = {"ONPREM_API_URL": "http://10.10.0.10:8000/v1, https://llm.example.com"}
    assert platform_origins(listed, serve) == {
        ("http", "127.0.0.1", 8000),
        ("http", "localhost", 8000),
        ("http", "::1", 8000),
        ("http", "10.10.0.10", 8000),
        ("https", "llm.example.com", 443),
    }
    serve.write_text("http_options: {host: 10.10.0.10, port: 9000}\n")
    assert platform_origins({}, serve) == {("http", "10.10.0.10", 9000)}
    # `python -m serve deploy` moves the port with ONPREM_SERVE_PORT (the masterclass does)
    moved = platform_origins({"ONPREM_SERVE_PORT": "8014"}, serve)
    assert moved == {("http", "10.10.0.10", 8014)}


@pytest.mark.parametrize(
    ("url", "key_env", "sent"),
    [
        ("http://127.0.0.1:8000/v1", None, PLATFORM_KEY),  # the local Serve app
        ("http://localhost:8000/v1", None, PLATFORM_KEY),
        ("http://127.0.0.1:8001/v1", None, None),  # another server on this machine
        ("https://api.openai.com/v1", None, None),  # foreign, no key named: none
        ("https://api.openai.com/v1", "OPENAI_API_KEY", "sk-cloud"),  # the key it names
        ("http://127.0.0.1:8001/v1", "OPENAI_API_KEY", "sk-cloud"),  # loopback http is fine
        ("http://127.0.0.1:8000/v1", "OPENAI_API_KEY", "sk-cloud"),  # a named key wins
        ("https://8000.example.com:8000/v1", None, None),  # the port alone is not the platform
    ],
)
def test_which_key_each_endpoint_gets(url, key_env, sent):
    assert endpoint_key(url, key_env, env=ENV) == sent


def test_the_platforms_key_is_refused_for_a_foreign_endpoint():
    with pytest.raises(EndpointKeyError) as err:
        endpoint_key("https://api.openai.com/v1", "ONPREM_API_KEY", env=ENV)
    text = str(err.value)
    assert "api_key_env = 'ONPREM_API_KEY' for https://api.openai.com/v1" in text
    assert "goes only to the platform's own address (http://127.0.0.1:8000" in text
    assert "Fix: name the endpoint's own key variable" in text
    # a URL listed as the platform's gets it
    listed = {**ENV, "ONPREM_API_URL": "https://llm.example.com"}
    assert endpoint_key("https://llm.example.com/v1", "ONPREM_API_KEY", env=listed) == PLATFORM_KEY


def test_a_key_over_plain_http_to_another_host_is_refused():
    with pytest.raises(EndpointKeyError, match="plain http to 10.0.0.7.*clear text.*Fix: use an"):
        endpoint_key("http://10.0.0.7:8000/v1", "OPENAI_API_KEY", env=ENV)
    # without a key there is nothing to leak
    assert endpoint_key("http://10.0.0.7:8000/v1", None, env=ENV) is None
    # the platform's own private address, listed by the operator, may be plain http
    onprem = {**ENV, "ONPREM_API_URL": "http://10.10.0.10:8000"}
    assert endpoint_key("http://10.10.0.10:8000/v1", None, env=onprem) == PLATFORM_KEY


def test_a_named_variable_must_exist():
    with pytest.raises(EndpointKeyError, match="'MY_KEY' is not set.*Fix: export MY_KEY=<key>"):
        endpoint_key("https://x.example/v1", "MY_KEY", env=ENV)


class Recorder(BaseHTTPRequestHandler):
    """An OpenAI-compatible stand-in that records the Authorization header of every request."""

    seen: ClassVar[list[str]] = []

    def log_message(self, *args):
        pass

    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        Recorder.seen.append(self.headers.get("Authorization", ""))
        self._send({"object": "list", "data": [{"id": "m"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.seen.append(self.headers.get("Authorization", ""))
        self._send(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )


@pytest.fixture
def foreign(monkeypatch):
    """A server on a loopback port that is not the platform's (not 8000)."""
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ONPREM_API_KEY", PLATFORM_KEY)
    monkeypatch.delenv("ONPREM_API_URL", raising=False)
    monkeypatch.delenv("ONPREM_SERVE_PORT", raising=False)
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_the_evaluation_sends_a_foreign_endpoint_no_key_by_default(foreign, tmp_path):
    from jobs.eval.config import EvalConfig
    from jobs.eval.run import EvalInputError, preflight

    data = tmp_path / "eval.jsonl"
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    data.write_text(json.dumps({"messages": chat}) + "\n")
    candidate = {"name": "other", "endpoint": foreign, "model": "m"}
    cfg = EvalConfig.model_validate({"name": "e", "eval_set": str(data), "candidates": [candidate]})
    preflight(cfg)
    assert Recorder.seen == [""], "the platform's key went to a foreign endpoint"
    named = {**candidate, "api_key_env": "ONPREM_API_KEY"}
    cfg = EvalConfig.model_validate({"name": "e", "eval_set": str(data), "candidates": [named]})
    with pytest.raises(EvalInputError, match="that is the platform's own API key"):
        preflight(cfg)
    assert Recorder.seen == [""], "nothing is sent when the key is refused"


def test_the_benchmark_sends_a_foreign_url_no_key_by_default(foreign, platform_root, capsys):
    from jobs import bench_serve

    prompts = platform_root / "prompts.txt"
    prompts.write_text("hello\n")
    # model "absent" is not listed: the run stops after its GET /models, which is recorded
    argv = [f"url={foreign}", "model=absent", f"prompts={prompts}"]
    assert bench_serve.main(argv) == 2
    assert "model 'absent' is not served" in capsys.readouterr().err
    assert Recorder.seen == [""], "the platform's key went to a foreign URL"
    assert bench_serve.main([*argv, "api_key_env=ONPREM_API_KEY"]) == 2
    assert "that is the platform's own API key" in capsys.readouterr().err
    assert Recorder.seen == [""], "nothing is sent when the key is refused"
