"""The row plumbing of batch evaluation (pure): what goes into vLLM and what comes back."""

import pytest

from jobs.eval.generate import _postprocess, _preprocess, reference_loss


def row(score: bool) -> dict:
    return {
        "key": f"tuned|{score}|eval:3",
        "model": "/models/base",
        "messages": [{"role": "user", "content": "How long is the warranty?"}],
        "reference": "Five years on the frame.",
        "max_tokens": 48,
        "score": score,
        "scoring": True,
    }


def test_answer_and_score_rows_carry_the_same_parameter_types():
    answer, score = _preprocess(row(False)), _preprocess(row(True))
    # Arrow stores the rows in one table: a key missing from one row or an int that is a
    # float in another would reach vLLM as a float and be refused.
    assert answer["sampling_params"].keys() == score["sampling_params"].keys()
    for key, value in answer["sampling_params"].items():
        assert type(value) is type(score["sampling_params"][key]), key
    assert (
        answer["sampling_params"]["max_tokens"] == 48
        and answer["sampling_params"]["temperature"] == 0
    )
    assert score["sampling_params"]["max_tokens"] == 1
    assert answer["messages"] == row(False)["messages"]
    assert score["messages"][-1] == {"role": "assistant", "content": "Five years on the frame."}
    # an engine with LoRA adapters gets no prompt log-probabilities at all (vLLM 0.29 fails)
    assert "prompt_logprobs" not in _preprocess({**row(False), "scoring": False})["sampling_params"]


def test_reference_loss_is_the_mean_nll_of_the_tokens_after_the_prompt():
    scored = {"prompt_ids": [1, 2, 3, 7, 8], "prompt_logprobs": [None, -1.0, -2.0, -0.5, -1.5]}
    assert reference_loss([1, 2, 3], scored) == pytest.approx(1.0)
    # a scored sequence that does not start with the generation prompt gives no loss
    assert reference_loss([1, 9, 3], scored) is None
    assert reference_loss([1, 2, 3, 7, 8], scored) is None


def test_postprocess_picks_the_logprob_of_each_actual_prompt_token():
    out = _postprocess(
        {
            "key": "tuned|True|eval:3",
            "generated_text": "x",
            "num_input_tokens": 3,
            "num_generated_tokens": 1,
            "prompt_token_ids": [5, 6, 7],
            "prompt_logprobs": [
                None,
                {6: {"logprob": -0.25, "rank": 2}, 9: {"logprob": -0.1, "rank": 1}},
                {"7": {"logprob": -3.0, "rank": 4}},
            ],
        }
    )
    assert out["prompt_logprobs"] == [None, -0.25, -3.0]
    answer = _postprocess(
        {
            "key": "tuned|False|eval:3",
            "generated_text": " Five years.",
            "num_input_tokens": 3,
            "num_generated_tokens": 3,
            "prompt_token_ids": [5, 6, 7],
            "prompt_logprobs": [None, {6: {"logprob": -0.25}}, {7: {"logprob": -3.0}}],
        }
    )
    assert answer["prompt_logprobs"] == [] and answer["completion_tokens"] == 3
