"""The fine-tune's loss is weighted by tokens: 2 DeepSpeed (ZeRO-2) workers with 2 micro-batches
each take the same optimizer step as one process on the whole global batch, where every
assistant token counts once. Real DeepSpeed and a real process group (gloo), no Ray."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch

from jobs.train.data import check_line, collate, make_unit, targets

pytestmark = pytest.mark.integration

# Answers of very different lengths, so that averaging per micro-batch would weigh the short
# ones far more than their tokens.
PAIRS = [
    ("Return window?", "45 days."),
    (
        "Tell me about shipping.",
        "We ship to 30 countries; orders over $50 ship free, others pay "
        "a flat $4.99, and delivery takes 3 to 5 business days in the US.",
    ),
    ("Phone?", "555-0147."),
    (
        "How do refunds work?",
        "Refunds go back to the original payment method within 5 business "
        "days of the return arriving at our Duluth warehouse, minus any return shipping.",
    ),
    ("Hours?", "8am to 6pm."),
    ("Can I change my order?", "Yes, within one hour of placing it, from the order page."),
    ("Gift wrap?", "No."),
    (
        "Do you price match?",
        "We match any authorised US retailer's advertised price for 14 "
        "days after purchase, on identical items in stock.",
    ),
]
WORLD, GRAD_ACCUM = 2, 2


def batches(model_dir: str) -> list[dict[str, torch.Tensor]]:
    """Global batch as micro-batches in rank-major order: rank r gets micro-batches
    ``[r * GRAD_ACCUM, (r + 1) * GRAD_ACCUM)``; each micro-batch holds 2 examples."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    units = []
    for n, (q, a) in enumerate(PAIRS, start=1):
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        row = check_line(tok, n, json.dumps({"messages": msgs}), 256)
        units.append(make_unit([(row["input_ids"], row["labels"])], n))
    return [collate(units[i : i + 2], pad_id=0) for i in range(0, len(units), 2)]


def load(model_dir: str):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    return model


def _worker(rank: int, port: int, model_dir: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(WORLD),
    )
    torch.set_num_threads(1)
    import deepspeed
    import torch.distributed as dist

    from jobs.train.loop import _allreduce, clear_stale_build_locks, token_weighted_loss

    clear_stale_build_locks()
    deepspeed.init_distributed(dist_backend="gloo")
    model = load(model_dir)
    engine, *_ = deepspeed.initialize(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),  # new = old - gradient
        config={
            "train_micro_batch_size_per_gpu": 2,
            "gradient_accumulation_steps": GRAD_ACCUM,
            "train_batch_size": 2 * GRAD_ACCUM * WORLD,
            "gradient_clipping": 0.0,
            "zero_optimization": {"stage": 2},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
        },
    )
    mine = batches(model_dir)[rank * GRAD_ACCUM : (rank + 1) * GRAD_ACCUM]
    (n_targets,) = _allreduce([sum(targets(b) for b in mine)], torch.device("cpu"))
    for batch in mine:  # the job's own step: jobs.train.loop.train_loop_per_worker
        out_ = engine(**batch, num_items_in_batch=1)
        engine.backward(token_weighted_loss(out_, n_targets, GRAD_ACCUM, WORLD))
        engine.step()
    if rank == 0:
        torch.save({k: v.detach().clone() for k, v in engine.module.state_dict().items()}, out)
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_process_gradient(model_dir: str, per_micro_batch_mean: bool = False):
    """The reference: one process, the whole global batch, the mean over every target token
    (or, to show the test can tell them apart, the mean of per-micro-batch means)."""
    model = load(model_dir)
    micro = batches(model_dir)
    if per_micro_batch_mean:
        loss = sum(model(**b).loss for b in micro) / len(micro)
    else:
        total = sum(targets(b) for b in micro)
        loss = sum(model(**b, num_items_in_batch=1).loss for b in micro) / total
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_two_workers_with_micro_batches_step_like_one_process_on_the_global_batch(
    tiny_model_dir, tmp_path
):
    import torch.multiprocessing as mp

    out = tmp_path / "after.pt"
    mp.spawn(_worker, args=(_free_port(), str(tiny_model_dir), str(out)), nprocs=WORLD, join=True)
    after = torch.load(out)
    before = load(str(tiny_model_dir)).state_dict()
    reference = one_process_gradient(str(tiny_model_dir))
    averaged = one_process_gradient(str(tiny_model_dir), per_micro_batch_mean=True)
    distinct = 0
    for name, grad in reference.items():
        step = before[name] - after[name]  # SGD with lr 1: the gradient DeepSpeed applied
        torch.testing.assert_close(step, grad, rtol=1e-4, atol=1e-6, msg=name)
        distinct += not torch.allclose(averaged[name], grad, rtol=1e-3, atol=1e-6)
    # the per-micro-batch mean (the old loss) would have failed this test
    assert distinct >= len(reference) // 2
