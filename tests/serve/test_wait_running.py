"""Waiting for a Serve app asks again when the dashboard does not answer, and stops at once
when it answers with an error."""

import pytest
import requests

from serve import deploy


def test_a_dashboard_that_times_out_is_asked_again(monkeypatch):
    answers = iter([requests.exceptions.ReadTimeout("read timed out"), "RUNNING"])

    def details(cluster):
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return {"applications": {"llm": {"status": a}}}

    monkeypatch.setattr(deploy, "details", details)
    monkeypatch.setattr(deploy.time, "sleep", lambda s: None)
    assert deploy.wait_running(None, "llm", timeout_s=30)["status"] == "RUNNING"


def test_an_error_answer_is_not_retried(monkeypatch):
    def details(cluster):
        raise RuntimeError("401 Unauthorized")

    monkeypatch.setattr(deploy, "details", details)
    with pytest.raises(RuntimeError, match="401"):
        deploy.wait_running(None, "llm", timeout_s=30)
