"""End-to-end latency at concurrency 1: through the Serve app vs the same generation
in-process, side by side.

    make demo            # or: python -m cluster up; serve deploy serve/config.yaml
    .venv/bin/python benchmarks/serve_overhead.py --model smollm2-support --requests 12

The in-process side runs the engine the replicas run, with the same model, adapter, prompts,
max_tokens and thread count as one replica (``--threads``, default: the replica's num_cpus), so
the difference is what Serve adds: HTTP, the proxy, the ingress hop and the streaming handle.
Requests alternate between the two sides, so a noisy neighbour hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--model", default="smollm2-support", help="served model id")
    p.add_argument("--requests", type=int, default=12)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prompts", default="data/support_chat/valid.jsonl")
    a = p.parse_args()
    import torch
    import yaml

    from cluster.chat import prompt_tokens, read_chat_jsonl
    from cluster.inference.engine import Engine, Request, SamplingParams
    from cluster.inference.loading import load_for_inference

    args = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())["applications"][0]["args"]
    adapters = {k: v for k, v in (args.get("adapters") or {}).items() if k == a.model}
    torch.set_num_threads(a.threads)
    lm = load_for_inference(args["model"], adapters)
    engine = Engine(
        lm.model,
        lm.tokenizer,
        eos_ids=lm.eos_ids(),
        context_len=lm.context_len,
        adapters=list(lm.adapters),
    )
    prompts = [ex.prompt for ex in read_chat_jsonl(REPO / a.prompts)][: a.requests]
    local, served, same = [], [], 0
    with httpx.Client(timeout=300) as http:
        for msgs in prompts:
            ids, prefix_len = prompt_tokens(lm.tokenizer, msgs)  # as the replica does
            t0 = time.perf_counter()
            (req,) = engine.generate(
                [
                    Request(
                        ids,
                        SamplingParams(max_tokens=a.max_tokens),
                        adapter=(adapters and a.model) or None,
                        prefix_len=prefix_len,
                    )
                ]
            )
            local.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = http.post(
                a.url + "/chat/completions",
                json={
                    "model": a.model,
                    "messages": msgs,
                    "max_tokens": a.max_tokens,
                    "temperature": 0,
                },
            )
            served.append(time.perf_counter() - t0)
            r.raise_for_status()
            same += r.json()["choices"][0]["message"]["content"].strip() == req.text.strip()
    lo, so = statistics.median(local), statistics.median(served)
    lm_, sm_ = statistics.mean(local) * 1000, statistics.mean(served) * 1000
    print(f"in-process engine:  median {lo * 1000:7.0f} ms  mean {lm_:7.0f} ms")
    print(f"through Serve:      median {so * 1000:7.0f} ms  mean {sm_:7.0f} ms")
    print(
        f"overhead (median):  {so / lo:7.3f}x  (target <= 1.15); identical answers "
        f"{same}/{len(prompts)}"
    )
    out = REPO / "reports" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_overhead.json").write_text(
        json.dumps(
            {
                "in_process_s": local,
                "served_s": served,
                "median_ratio": so / lo,
                "identical_answers": same,
                "requests": len(prompts),
                "max_tokens": a.max_tokens,
                "threads": a.threads,
                "model": a.model,
                "time": time.time(),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
