"""Chat conversations → token ids with a loss mask on assistant turns → training units, fed to
the workers by Ray Data.

The loss covers assistant tokens only (the model's own answers, including the end-of-turn
token so it learns to stop); system and user tokens, and assistant turns with ``weight: 0``,
are masked with -100.

The data path (the driver builds it, Ray Data runs it; no example is collected on the driver)::

    read_chat_lines(path)                 {line, text}, in file order, BLOCK_LINES per block
      .map_batches(CheckAndTokenize)      + error | input_ids, labels, n_tokens, n_trained, ...
      .filter(no error)
      .map_batches(to_units)              packed rows (or one example per row) with positions
                                          that restart at 0 for every example

Every worker streams the units in a seeded order per epoch and keeps every ``world``-th one
(``rank_units``); ``step_batches`` turns that into the micro-batches of each optimizer step.
The order depends only on the file, the seed, the epoch and the rank, so a run resumed at step
``s`` skips exactly the units steps ``0..s-1`` used and continues with the same data.

Packing is padding-free in the sense of TRL and torchtune: positions restart per example and,
with no attention mask, transformers turns those restarts into a block-diagonal causal mask,
so no token attends to another example in its row.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cluster.chat import Example, answer_key, assistant_spans, parse_line

if TYPE_CHECKING:
    import pyarrow
    import ray.data

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


def copies(kind: str, line: int, mix: dict[str, float], seed: int) -> int:
    """How many times the example on ``line`` counts per epoch under the data mixture ``mix``
    (weight per ``metadata.kind``). A weight of 2.5 keeps it twice and, for a seeded half of
    the lines, a third time; 0.5 keeps a seeded half. A function of the line, so the same file
    always gives the same mixture, however Ray Data splits it."""
    weight = mix.get(kind, 1.0)
    whole = int(weight)
    return whole + int(np.random.default_rng([seed, line]).random() < weight - whole)


def check_line(
    tokenizer: Any, line: int, text: str, max_seq_len: int, *, final_assistant: bool = False
) -> dict[str, Any]:
    """One line of a chat JSONL file checked and tokenized: a row of the data set. ``error``
    is empty when the line can be trained on; ``error_kind`` is ``format`` (the line is not a
    valid conversation) or ``fit`` (valid, but too long or with nothing to learn)."""
    row: dict[str, Any] = {
        "line": line,
        "error": "",
        "error_kind": "",
        "input_ids": [],
        "labels": [],
        "n_tokens": 0,
        "n_trained": 0,
        "kind": "",
        "answers": [],
        "reference": "",
    }
    ex, problems = parse_line(text, final_assistant=final_assistant)
    if problems:
        return row | {"error": "; ".join(problems), "error_kind": "format"}
    tok = tokenize_example(tokenizer, Example(ex.messages, ex.metadata, line))
    row.update(
        input_ids=tok.input_ids,
        labels=tok.labels,
        n_tokens=tok.n_tokens,
        n_trained=tok.n_trained,
        kind=str(ex.metadata.get("kind") or ""),
        answers=[answer_key(m["content"]) for m in ex.messages if m["role"] == "assistant"],
        reference=answer_key(ex.reference) if ex.reference is not None else "",
    )
    if tok.n_tokens > max_seq_len:
        row.update(
            error=f"{tok.n_tokens} tokens after templating is longer than "
            f"data.max_seq_len={max_seq_len}; shorten it or raise max_seq_len",
            error_kind="fit",
        )
    elif tok.n_trained == 0:
        row.update(error="every assistant turn has weight 0: nothing to learn", error_kind="fit")
    return row


class CheckAndTokenize:
    """``Dataset.map_batches`` stage: ``{line, text}`` batches → checked, tokenized rows."""

    def __init__(self, model_dir: str, max_seq_len: int, final_assistant: bool = False):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.max_seq_len = max_seq_len
        self.final_assistant = final_assistant

    def __call__(self, batch: pyarrow.Table) -> pyarrow.Table:
        import pyarrow as pa

        rows = [
            check_line(
                self.tokenizer,
                int(line),
                str(text),
                self.max_seq_len,
                final_assistant=self.final_assistant,
            )
            for line, text in zip(
                batch.column("line").to_pylist(), batch.column("text").to_pylist(), strict=True
            )
        ]
        return pa.Table.from_pylist(rows, schema=_schemas()[0])


@functools.cache
def _schemas() -> tuple[pyarrow.Schema, pyarrow.Schema]:
    import pyarrow as pa

    ints = pa.list_(pa.int32())
    tokenized = pa.schema(
        [
            ("line", pa.int64()),
            ("error", pa.string()),
            ("error_kind", pa.string()),
            ("input_ids", ints),
            ("labels", ints),
            ("n_tokens", pa.int64()),
            ("n_trained", pa.int64()),
            ("kind", pa.string()),
            ("answers", pa.list_(pa.string())),
            ("reference", pa.string()),
        ]
    )
    units = pa.schema(
        [
            ("input_ids", ints),
            ("labels", ints),
            ("position_ids", ints),
            ("n_tokens", pa.int64()),
            ("n_trained", pa.int64()),
            ("n_examples", pa.int64()),
            ("first_line", pa.int64()),
        ]
    )
    return tokenized, units


def pack(lengths: Sequence[int], max_seq_len: int, seed: int) -> list[list[int]]:
    """Group examples into bins of at most ``max_seq_len`` tokens (first fit, after a seeded
    shuffle). Returns bins of example indices."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    bins: list[list[int]] = []
    room: list[int] = []
    for idx in order:
        n = lengths[idx]
        for b, free in enumerate(room):
            if n <= free:
                bins[b].append(int(idx))
                room[b] -= n
                break
        else:
            bins.append([int(idx)])
            room.append(max_seq_len - n)
    return bins


def make_unit(examples: Sequence[tuple[Sequence[int], Sequence[int]]], first_line: int) -> dict:
    """One training row from ``(input_ids, labels)`` examples laid end to end: positions restart
    at 0 for every example, and no example's first token is a target (in a row of its own it
    has nothing before it to be predicted from), so a packed row's loss is the sum of its
    examples' losses."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for ex_ids, ex_labels in examples:
        ids += list(ex_ids)
        labels += [IGNORE, *list(ex_labels)[1:]]
        positions += range(len(ex_ids))
    return {
        "input_ids": ids,
        "labels": labels,
        "position_ids": positions,
        "n_tokens": len(ids),
        "n_trained": sum(label != IGNORE for label in labels),
        "n_examples": len(examples),
        "first_line": first_line,
    }


def to_units(
    batch: pyarrow.Table, *, packing: bool, max_seq_len: int, mix: dict[str, float], seed: int
) -> pyarrow.Table:
    """``Dataset.map_batches`` stage (one block at a time): checked rows → training units, the
    mixture applied, then packed first-fit within the block (``BLOCK_LINES`` lines) or one
    example per unit."""
    import pyarrow as pa

    lines = batch.column("line").to_pylist()
    ids = batch.column("input_ids").to_pylist()
    labels = batch.column("labels").to_pylist()
    kinds = batch.column("kind").to_pylist()
    order = [
        i
        for i, (kind, line) in enumerate(zip(kinds, lines, strict=True))
        for _ in range(copies(kind, line, mix, seed))
    ]
    if packing and order:
        bins = pack([len(ids[i]) for i in order], max_seq_len, seed + lines[0])
        groups = [[order[j] for j in b] for b in bins]
    else:
        groups = [[i] for i in order]
    units = [make_unit([(ids[i], labels[i]) for i in g], lines[g[0]]) for g in groups]
    return pa.Table.from_pylist(units, schema=_schemas()[1])


# --- the driver side: the data sets and the checker's report ---------------------------------

BLOCK_LINES = 8192  # lines per block read; also the packing window


def _text_lines(f: Any, chunk: int = 1 << 22) -> Iterator[str]:
    """The lines of a binary file read ``chunk`` bytes at a time (never the whole file)."""
    rest = b""
    while data := f.read(chunk):
        *whole, rest = (rest + data).split(b"\n")
        for raw in whole:
            yield raw.decode("utf-8").rstrip("\r")
    if rest:
        yield rest.decode("utf-8").rstrip("\r")


def read_chat_lines(path: str) -> ray.data.Dataset:
    """A JSONL file as ``{line, text}`` rows (non-empty lines, 1-based numbers, file order)."""
    import ray.data
    from ray.data.datasource import FileBasedDatasource

    class ChatLines(FileBasedDatasource):
        def _read_stream(self, f: Any, path: str) -> Iterator[Any]:
            import pyarrow as pa

            lines: list[int] = []
            texts: list[str] = []
            for number, raw in enumerate(_text_lines(f), start=1):
                if raw.strip():
                    lines.append(number)
                    texts.append(raw)
                if len(lines) == BLOCK_LINES:
                    yield pa.table({"line": lines, "text": texts})
                    lines, texts = [], []
            if lines:
                yield pa.table({"line": lines, "text": texts})

    # One read task and no re-splitting: blocks (and so packing windows) stay as written here
    # whatever the cluster size, so a resumed run on more nodes packs the same rows.
    return ray.data.read_datasource(ChatLines(path), override_num_blocks=1)


def tokenized_dataset(
    path: str, model_dir: str, max_seq_len: int, *, final_assistant: bool = False
) -> ray.data.Dataset:
    """Every line of ``path`` checked and tokenized by Ray Data, materialized in the object
    store (spilled to disk when large), in file order."""
    return (
        read_chat_lines(path)
        .map_batches(
            CheckAndTokenize,
            fn_constructor_args=(model_dir, max_seq_len, final_assistant),
            batch_format="pyarrow",
            batch_size=None,
            concurrency=1,
            num_cpus=0.25,
        )
        .materialize()
    )


def units_dataset(
    tokenized: ray.data.Dataset,
    *,
    packing: bool,
    max_seq_len: int,
    mix: dict[str, float],
    seed: int,
) -> ray.data.Dataset:
    """The checked rows as training units (materialized)."""
    return (
        tokenized.filter(expr="error == ''")
        .map_batches(
            to_units,
            fn_kwargs={"packing": packing, "max_seq_len": max_seq_len, "mix": mix, "seed": seed},
            batch_format="pyarrow",
            batch_size=None,
            num_cpus=0.25,
        )
        .materialize()
    )


MAX_REPORTED_ERRORS = 200


def summarize(batch: pyarrow.Table) -> pyarrow.Table:
    """``Dataset.map_batches`` stage: one block → one summary row (lines, the first bad rows,
    the ``metadata.kind`` values and a histogram of the good rows' lengths), so the report
    needs one pass and tiny results (Ray Data's ``Quantile`` aggregate ran a hash shuffle that
    took ~9 s here for a 392-line file)."""
    import pyarrow as pa

    error = batch.column("error").to_pylist()
    ok = [i for i, e in enumerate(error) if not e]
    lengths = batch.column("n_tokens").to_pylist()
    trained = batch.column("n_trained").to_pylist()
    hist = np.bincount([lengths[i] for i in ok], minlength=1) if ok else np.zeros(1, dtype=int)
    bad = [i for i, e in enumerate(error) if e][:MAX_REPORTED_ERRORS]
    lines = batch.column("line").to_pylist()
    kinds = batch.column("error_kind").to_pylist()
    example_kinds = batch.column("kind").to_pylist()
    return pa.Table.from_pylist(
        [
            {
                "lines": len(error),
                "kinds": sorted({example_kinds[i] for i in ok} - {""}),
                "trained_tokens": sum(trained[i] for i in ok),
                "histogram": hist.tolist(),
                "errors": [
                    {"line": lines[i], "error": error[i], "error_kind": kinds[i]} for i in bad
                ],
            }
        ]
    )


def report(tokenized: ray.data.Dataset) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """The checker's report: token statistics of the good rows (with ``kinds``, their
    ``metadata.kind`` values), the first bad rows (line, kind, message) and the number of lines.
    Only per-block summaries reach the driver."""
    parts = tokenized.map_batches(
        summarize, batch_format="pyarrow", batch_size=None, num_cpus=0.25
    ).take_all()
    width = max((len(p["histogram"]) for p in parts), default=1)
    hist = np.zeros(width, dtype=np.int64)
    for p in parts:
        hist[: len(p["histogram"])] += p["histogram"]
    errors = sorted((e for p in parts for e in p["errors"]), key=lambda e: e["line"])
    n = int(hist.sum())
    sizes = np.arange(width)
    cum = np.cumsum(hist)

    def quantile(q: float) -> float:
        return float(sizes[np.searchsorted(cum, max(1, math.ceil(q * n)))]) if n else 0.0

    stats = {
        "examples": n,
        "tokens": int((hist * sizes).sum()),
        "trained_tokens": int(sum(p["trained_tokens"] for p in parts)),
        "mean": float((hist * sizes).sum() / n) if n else 0.0,
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "max": int(sizes[hist > 0].max()) if n else 0,
    }
    kinds = sorted({k for p in parts for k in p["kinds"]})
    return (
        stats | {"kinds": kinds},
        errors[:MAX_REPORTED_ERRORS],
        int(sum(p["lines"] for p in parts)),
    )


def repeated_references(train: ray.data.Dataset, valid: ray.data.Dataset) -> int:
    """How many held-out references (final assistant turns) repeat a training answer word for
    word (``cluster.chat.verbatim_references`` on Ray Data: only answer digests travel)."""
    refs = [
        r["reference"] for r in valid.select_columns(["reference"]).take_all() if r["reference"]
    ]
    wanted = set(refs)
    if not wanted:
        return 0
    hits = {
        r["key"]
        for r in train.flat_map(
            lambda row: [{"key": k} for k in row["answers"] if k in wanted]
        ).take_all()
    }
    return sum(ref in hits for ref in refs)


# --- the worker side: a rank's units in step order, and micro-batches ------------------------


@dataclass(frozen=True)
class Schedule:
    """The optimizer steps over ``n_units`` training units.

    Each step every rank trains on ``micro_batch * grad_accum`` units; an epoch is
    ``steps_per_epoch`` whole global batches (the few units left over are seen in another
    epoch's order). Which units a step uses depends only on the seed, the epoch and the rank.
    """

    n_units: int
    micro_batch: int
    grad_accum: int
    world_size: int
    seed: int

    @property
    def per_rank_step(self) -> int:
        return self.micro_batch * self.grad_accum

    @property
    def global_batch(self) -> int:
        return self.per_rank_step * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return self.n_units // self.global_batch

    def total_steps(self, epochs: float | None, max_steps: int | None) -> int:
        if max_steps:
            return max_steps
        return max(1, math.ceil((epochs or 1) * self.steps_per_epoch))

    def epoch_at(self, step: int) -> float:
        return step / max(1, self.steps_per_epoch)

    def step_batches(
        self, epoch_units: Callable[[int], Generator[dict[str, Any]]], start: int, total: int
    ) -> Iterator[list[list[dict[str, Any]]]]:
        """The ``grad_accum`` micro-batches of this rank for steps ``start..total-1``.
        ``epoch_units(epoch)`` yields this rank's units in that epoch's order; a run that
        resumes at ``start`` skips the units of the steps before it."""
        step = start
        while step < total:
            epoch, in_epoch = divmod(step, self.steps_per_epoch)
            units = epoch_units(epoch)
            for _ in range(in_epoch * self.per_rank_step):
                next(units)
            while in_epoch < self.steps_per_epoch and step < total:
                mine = [next(units) for _ in range(self.per_rank_step)]
                yield [
                    mine[i : i + self.micro_batch]
                    for i in range(0, self.per_rank_step, self.micro_batch)
                ]
                step += 1
                in_epoch += 1
            units.close()  # stop this epoch's Ray Data iterator before the next one


SHUFFLE_BUFFER = 16384  # units; a whole epoch for data sets up to this size


def rank_units(
    batches: Callable[..., Iterable[Any]], rank: int, world: int, seed: int, epoch: int
) -> Iterator[dict[str, Any]]:
    """Rank ``rank``'s share of one epoch: the units in a seeded shuffled order (Ray Data's
    local shuffle over a ``SHUFFLE_BUFFER`` window, the same on every rank) and every
    ``world``-th of them from position ``rank``. ``batches`` is a ``DataIterator``'s
    ``iter_batches``."""
    i = 0
    for table in batches(
        batch_size=256,
        batch_format="pyarrow",
        local_shuffle_buffer_size=SHUFFLE_BUFFER,
        local_shuffle_seed=seed * 100003 + epoch,
    ):
        for row in table.to_pylist():
            if i % world == rank:
                yield row
            i += 1


def collate(units: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad a micro-batch of units. No attention mask: positions restart per example, so
    transformers masks attention block-diagonally (padding continues the last positions and
    has no targets; causal attention keeps real tokens from seeing it)."""
    import torch

    width = max(len(u["input_ids"]) for u in units)
    input_ids = torch.full((len(units), width), pad_id, dtype=torch.long)
    labels = torch.full((len(units), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(units), width), dtype=torch.long)
    for r, u in enumerate(units):
        n = len(u["input_ids"])
        input_ids[r, :n] = torch.tensor(u["input_ids"])
        labels[r, :n] = torch.tensor(u["labels"])
        last = u["position_ids"][-1] if n else -1
        positions[r, :n] = torch.tensor(u["position_ids"])
        positions[r, n:] = torch.arange(last + 1, last + 1 + width - n)
    return {"input_ids": input_ids, "position_ids": positions, "labels": labels}


def targets(batch: dict[str, Any]) -> int:
    """Tokens a batch's loss is taken over: labelled positions after the model's shift."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())
