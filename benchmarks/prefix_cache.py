"""The engine with and without prefix caching, side by side: output tokens/s with 1 and with
16 simulated users (each sends requests one after the other), in-process, one thread.

    .venv/bin/python benchmarks/prefix_cache.py --adapter runs/smollm2-support/adapter

Both sides run the same engine on the same prompts (the eval set: most share a system turn);
one side marks each prompt's shared prefix (``cluster.chat.prompt_tokens``), the other does
not, so the difference is what computing that prefix once saves.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--adapter", default=None, help="LoRA adapter folder (optional)")
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--per-user", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--prompts", default="data/support_chat/valid.jsonl")
    a = p.parse_args()
    import torch

    from cluster.chat import prompt_tokens, read_chat_jsonl
    from cluster.inference.engine import BackgroundEngine, Engine, Request, SamplingParams
    from cluster.inference.loading import load_for_inference
    from cluster.store import ModelStore

    torch.set_num_threads(1)
    adapters = {"ft": a.adapter} if a.adapter else None
    lm = load_for_inference(str(ModelStore().resolve(a.model)), adapters)
    engine = Engine(
        lm.model,
        lm.tokenizer,
        eos_ids=lm.eos_ids(),
        max_batch_size=a.users,
        context_len=lm.context_len,
        adapters=list(lm.adapters),
    )
    bg = BackgroundEngine(engine, 1)
    prompts = [prompt_tokens(lm.tokenizer, ex.prompt) for ex in read_chat_jsonl(REPO / a.prompts)]

    def level(users: int, per_user: int, cached: bool) -> float:
        tokens, lock = [0], threading.Lock()

        def user(u: int) -> None:
            for j in range(per_user):
                ids, prefix_len = prompts[(u * per_user + j) % len(prompts)]
                done = threading.Event()
                req = Request(
                    ids,
                    SamplingParams(max_tokens=a.max_tokens),
                    adapter="ft" if a.adapter else None,
                    prefix_len=prefix_len if cached else 0,
                    on_event=lambda r, _d, done=done: done.set() if r.done else None,
                )
                bg.submit(req)
                done.wait()
                with lock:
                    tokens[0] += len(req.out_ids)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return tokens[0] / (time.perf_counter() - t0)

    level(1, 2, False)  # warm-up
    rows = []
    for cached in (False, True, False, True):  # interleaved, so drift hits both alike
        one = level(1, a.per_user * 2, cached)
        many = level(a.users, a.per_user, cached)
        rows.append((cached, one, many))
        label = "prefix cache" if cached else "no cache    "
        print(
            f"{label}: 1 user {one:5.1f} tok/s, {a.users} users {many:5.1f} tok/s "
            f"-> {many / one:.2f}x",
            flush=True,
        )
    bg.stop()

    def mean(cached: bool, i: int) -> float:
        vals = [r[i] for r in rows if r[0] == cached]
        return sum(vals) / len(vals)

    gain_off, gain_on = mean(False, 2) / mean(False, 1), mean(True, 2) / mean(True, 1)
    print(
        f"prefix cache vs none at {a.users} users: {mean(True, 2) / mean(False, 2):.2f}x "
        f"tokens/s; batching gain {gain_off:.2f}x -> {gain_on:.2f}x "
        f"(hits {engine.prefix_hits}, misses {engine.prefix_misses})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
