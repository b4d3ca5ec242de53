"""The evaluation driver without Ray: preflight refusals, and an endpoint candidate scored
end to end against a local OpenAI-compatible server standing in for the cloud API (the real
one is not reachable from tests). ``ray.init`` raises in unit tests, so passing here shows an
endpoint-only evaluation needs no cluster."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from jobs.eval import run
from jobs.eval.config import EvalConfig
from jobs.eval.run import EvalInputError, evaluate, preflight

KEY = "sk-test-not-a-real-key"
PRICE = {"pattern": r"\$ ?(\d[\d,]*)", "expected": ["65"]}
EVAL = [
    ("How much is labor for a repair?", "Labor is a flat $65 per repair.", ["flat \\$65"]),
    ("What would I pay for a Wren?", "A Wren costs $1,290.", ["1,?290"]),
]


def chat_line(question, answer, meta=None):
    msgs = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": msgs, "metadata": meta or {}}) + "\n"


@pytest.fixture
def data(tmp_path):
    (tmp_path / "eval.jsonl").write_text(
        chat_line(*EVAL[0][:2], {"kind": "company", "facts": EVAL[0][2], "values": [PRICE]})
        + chat_line(*EVAL[1][:2], {"kind": "company", "facts": EVAL[1][2]})
    )
    (tmp_path / "train.jsonl").write_text(
        chat_line("Repair labor?", "Workshop repairs cost a flat $65 in labor.")
    )
    return tmp_path


class FakeCloud(BaseHTTPRequestHandler):
    """/v1/models and /v1/chat/completions; ``gpt-4o`` answers with the reference text,
    ``gpt-4o-mini`` with a fixed wrong price. Every request must carry the bearer key."""

    seen_auth: ClassVar[list[str]] = []
    answers: ClassVar[dict[str, str]] = {q: a for q, a, _ in EVAL}

    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self):
        auth = self.headers.get("Authorization", "")
        self.seen_auth.append(auth)
        if auth != f"Bearer {KEY}":
            self._send(401, {"error": {"message": "invalid api key"}})
            return False
        return True

    def do_GET(self):
        if self._authorized():
            self._send(200, {"object": "list", "data": [{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self._authorized():
            return
        question = body["messages"][-1]["content"]
        text = self.answers[question] if body["model"] == "gpt-4o" else "That is $80."
        self._send(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )


@pytest.fixture
def cloud():
    FakeCloud.seen_auth = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeCloud)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


class FlatEmbedder:
    """Stands in for the sentence model (loading it is not what this test is about)."""

    def similarity(self, answers, references):
        return [1.0 if a == r else 0.0 for a, r in zip(answers, references, strict=True)]


def config(data, endpoint, **extra):
    return EvalConfig.model_validate(
        {
            "name": "cloud-check",
            "eval_set": str(data / "eval.jsonl"),
            "candidates": [
                {
                    "name": "cloud",
                    "endpoint": endpoint,
                    "model": "gpt-4o",
                    "api_key_env": "OPENAI_API_KEY",
                },
                {
                    "name": "cloud-mini",
                    "endpoint": endpoint,
                    "model": "gpt-4o-mini",
                    "api_key_env": "OPENAI_API_KEY",
                },
            ],
            "bootstrap_samples": 100,
            **extra,
        }
    )


def test_an_endpoint_candidate_is_scored_with_the_key_from_its_env_var(
    data, cloud, tmp_path, monkeypatch
):
    monkeypatch.setenv("ONPREM_ROOT", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(run, "Embedder", FlatEmbedder)
    cfg = config(data, cloud)
    result = evaluate(cfg, preflight(cfg))
    ev = result["sets"]["eval"]
    assert ev["cloud"]["fact"]["mean"] == 1.0 and ev["cloud"]["wrong_fact"]["mean"] == 0.0
    assert ev["cloud-mini"]["fact"]["mean"] == 0.0
    assert ev["cloud-mini"]["wrong_fact"] == {"mean": 1.0, "low": 1.0, "high": 1.0, "n": 1}
    assert [a["answer"] for a in result["answers"]["cloud"]] == [a for _, a, _ in EVAL]
    # 2 model checks + 2 answers per candidate, each with the bearer key from the env var
    assert FakeCloud.seen_auth == [f"Bearer {KEY}"] * 6
    md = (tmp_path / "reports/eval/cloud-check/eval.md").read_text()
    assert "| metric | reference | cloud | cloud-mini |" in md
    assert (
        KEY not in md and KEY not in (tmp_path / "reports/eval/cloud-check/eval.json").read_text()
    )


def test_a_missing_key_variable_stops_the_run_before_any_request(data, cloud, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EvalInputError) as err:
        preflight(config(data, cloud))
    msg = str(err.value)
    assert "candidate 'cloud': api_key_env = 'OPENAI_API_KEY' is not set in the environment" in msg
    assert "Fix: export OPENAI_API_KEY=<key> before running" in msg
    assert FakeCloud.seen_auth == []


def test_a_wrong_key_is_refused_by_the_endpoint_check(data, cloud, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with pytest.raises(EvalInputError, match=r"refused the API key \(401\)"):
        preflight(config(data, cloud))


def test_references_that_repeat_training_answers_are_refused_unless_allowed(
    data, cloud, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    train = data / "train.jsonl"
    train.write_text(train.read_text() + chat_line("Wren price?", "a wren  costs $1,290."))
    with pytest.raises(EvalInputError) as err:
        preflight(config(data, cloud, train_set=str(train)))
    msg = str(err.value)
    assert f"eval_set = '{data / 'eval.jsonl'}': 1 of 2 references repeat" in msg
    assert "(lines 2)" in msg and "allow_verbatim_references: true" in msg
    sets = preflight(config(data, cloud, train_set=str(train), allow_verbatim_references=True))
    assert len(sets["eval"]) == 2
