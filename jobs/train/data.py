"""Chat conversations → token ids with a loss mask on assistant turns, then batches.

The loss covers assistant tokens only (the model's own answers, including the end-of-turn
token so it learns to stop); system and user tokens, and assistant turns with ``weight: 0``,
are masked with -100. Batches are drawn by a deterministic sampler: optimizer step ``s`` always
sees the same examples, so a run resumed from a checkpoint continues at the same data position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cluster.chat import Example, assistant_spans

IGNORE = -100


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    line: int

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def tokenize_example(tokenizer: Any, ex: Example) -> Tokenized:
    """Tokenize the rendered conversation; label only tokens inside weighted assistant spans."""
    text, spans = assistant_spans(tokenizer, ex.messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    for i, (start, end) in enumerate(offsets):
        for s_start, s_end, weight in spans:
            if weight > 0 and start >= s_start and end <= s_end and end > start:
                labels[i] = ids[i]
                break
    return Tokenized(ids, labels, ex.line)


def tokenize_all(
    tokenizer: Any, examples: Sequence[Example], max_seq_len: int
) -> tuple[list[Tokenized], list[tuple[int, str]]]:
    """Tokenized examples and the lines that do not fit (too long, or nothing to learn)."""
    out, errors = [], []
    for ex in examples:
        tok = tokenize_example(tokenizer, ex)
        if tok.n_tokens > max_seq_len:
            errors.append(
                (
                    ex.line,
                    f"{tok.n_tokens} tokens after templating is longer than "
                    f"data.max_seq_len={max_seq_len}; shorten it or raise "
                    "max_seq_len",
                )
            )
        elif tok.n_trained == 0:
            errors.append((ex.line, "every assistant turn has weight 0: nothing to learn"))
        else:
            out.append(tok)
    return out, errors


def apply_mix(examples: Sequence[Example], mix: dict[str, float], seed: int) -> list[Example]:
    """Repeat examples by the weight of their ``metadata.kind`` (a data mixture). A weight of
    2.5 keeps every example twice and a seeded half of them a third time; 0.5 keeps half."""
    if not mix:
        return list(examples)
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for ex in examples:
        weight = mix.get(str(ex.metadata.get("kind")), 1.0)
        copies = int(weight) + (1 if rng.random() < weight - int(weight) else 0)
        out += [ex] * copies
    return out


def token_stats(items: Sequence[Tokenized]) -> dict[str, float]:
    lengths = np.array([t.n_tokens for t in items]) if items else np.zeros(1)
    return {
        "examples": len(items),
        "tokens": int(lengths.sum()),
        "trained_tokens": int(sum(t.n_trained for t in items)),
        "mean": float(lengths.mean()),
        "p50": float(np.percentile(lengths, 50)),
        "p95": float(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
    }


def pack(items: Sequence[Tokenized], max_seq_len: int, seed: int) -> list[list[int]]:
    """Group examples into bins of at most ``max_seq_len`` tokens (first fit, after a seeded
    shuffle). Returns bins of example indices. Attention spans a bin (naive packing)."""
    order = np.random.default_rng(seed).permutation(len(items))
    bins: list[list[int]] = []
    room: list[int] = []
    for idx in order:
        n = items[idx].n_tokens
        for b, free in enumerate(room):
            if n <= free:
                bins[b].append(int(idx))
                room[b] -= n
                break
        else:
            bins.append([int(idx)])
            room.append(max_seq_len - n)
    return bins


@dataclass(frozen=True)
class Sampler:
    """Which units (examples or packed bins) rank ``rank`` trains on at each optimizer step.

    Global unit number ``g = step * global_batch + slot`` walks a fresh seeded permutation of
    all units every epoch, so the mapping depends only on ``(seed, step)``, never on history.
    """

    n_units: int
    micro_batch: int
    grad_accum: int
    world_size: int
    seed: int

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.grad_accum * self.world_size

    def steps_per_epoch(self) -> float:
        return self.n_units / self.global_batch

    def total_steps(self, epochs: float | None, max_steps: int | None) -> int:
        if max_steps:
            return max_steps
        return max(1, math.ceil((epochs or 1) * self.steps_per_epoch()))

    def _unit(self, g: int) -> int:
        epoch, pos = divmod(g, self.n_units)
        return int(np.random.default_rng(self.seed + epoch).permutation(self.n_units)[pos])

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """``grad_accum`` lists of ``micro_batch`` unit indices for this rank at this step."""
        base = step * self.global_batch
        out = []
        for a in range(self.grad_accum):
            first = base + (a * self.world_size + rank) * self.micro_batch
            out.append([self._unit(first + b) for b in range(self.micro_batch)])
        return out

    def epoch_at(self, step: int) -> float:
        return step * self.global_batch / self.n_units


def collate(
    items: Sequence[Tokenized], units: Sequence[Sequence[int]] | None, pad_id: int
) -> dict[str, Any]:
    """Right-pad a micro-batch. ``units`` lists the example indices of each row (packing);
    without packing each row is one example."""
    import torch

    rows = [[i] for i in range(len(items))] if units is None else units
    seqs = []
    for row in rows:
        ids: list[int] = []
        labels: list[int] = []
        for i in row:
            ids += items[i].input_ids
            labels += items[i].labels
        seqs.append((ids, labels))
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, (ids, labs) in enumerate(seqs):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        labels[r, : len(labs)] = torch.tensor(labs)
        mask[r, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
