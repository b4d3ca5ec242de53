"""Make ``replay.json``: the base model's own greedy answers to the general conversations of
the training set (everyday questions, other companies, contrast and contrast_mirror questions).

    # runs in-process on vLLM (the engine the Serve app and the evaluation use)
    python -m jobs.pull_model --config jobs/configs/pull/smollm2.yaml
    python data/support_chat/distill.py && python data/support_chat/build.py

By default only the contrast_mirror conversations without an answer in ``replay.json`` are
generated and every existing answer is kept, so the rows of the older kinds stay
byte-identical (5 of them have no usable replay and keep their hand-written answers); ``--all``
regenerates every answer of every replay kind (greedy output can differ across CPUs and
dtypes, so that can change existing rows).

Why: training on hand-written general answers moved SmolLM2-135M's behaviour on general
questions (its style went from hedged and long to short and confident, and often wrong);
training on its own answers (replay, or self-distillation) anchors that behaviour while the
company conversations teach the facts. Each answer is cut at a sentence boundary to at most
40 words; ``build.py`` keeps the hand-written answer where the replay is unusable.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import build  # noqa: E402  (this folder's build.py)

MAX_WORDS = 40


def trim(text: str, finished: bool) -> str | None:
    """Whole sentences, at most MAX_WORDS words; None if no sentence ends in time."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    kept: list[str] = []
    for sentence in sentences:
        if kept and len(" ".join([*kept, sentence]).split()) > MAX_WORDS:
            break
        kept.append(sentence)
    out = " ".join(kept).strip()
    complete = finished or len(kept) < len(sentences)
    if not out or not re.search(r"[.!?)]$", out) or not complete:
        return None
    return out if len(out.split()) <= MAX_WORDS else None


def main() -> int:  # vLLM spawns its engine process: run under `if __name__ == "__main__"`
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument(
        "--all", action="store_true", help="regenerate every answer, not only the missing ones"
    )
    a = p.parse_args()
    from vllm import LLM, SamplingParams

    from cluster.llm import CPU_ENGINE_KWARGS
    from cluster.store import ModelStore

    kept = {} if a.all else build.load_replay()
    kinds = build.REPLAY_KINDS if a.all else ("contrast_mirror",)
    records = [
        r
        for r in build.build_all()["train.jsonl"]
        if r["metadata"]["kind"] in kinds and build.replay_key(r["messages"]) not in kept
    ]
    if not records:
        print(
            f"nothing to replay: every {'/'.join(kinds)} row has an answer in {build.REPLAY_FILE}"
        )
        return 0
    llm = LLM(model=str(ModelStore().resolve(a.model)), max_model_len=2048, **CPU_ENGINE_KWARGS)
    outputs = llm.chat(
        [
            [{"role": m["role"], "content": m["content"]} for m in r["messages"][:-1]]
            for r in records
        ],
        SamplingParams(temperature=0, max_tokens=a.max_tokens),
        use_tqdm=False,
    )
    answers = dict(kept)
    for record, output in zip(records, outputs, strict=True):
        text = trim(output.outputs[0].text, output.outputs[0].finish_reason == "stop")
        if text is not None:
            answers[build.replay_key(record["messages"])] = text
    out = {
        "model": a.model,
        "decoding": f"greedy, max_tokens {a.max_tokens}, trimmed to "
        f"whole sentences of at most {MAX_WORDS} words",
        "answers": dict(sorted(answers.items())),
    }
    build.REPLAY_FILE.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    new = len(answers) - len(kept)
    print(
        f"{new} of {len(records)} conversations replayed ({len(kept)} kept) -> {build.REPLAY_FILE}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
