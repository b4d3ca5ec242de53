"""A continuous-batching generation engine on a Hugging Face causal LM.

Many requests share one forward pass: each :meth:`Engine.step` admits waiting requests
(prefilled together), merges their KV caches into the running batch (left-padded), decodes one
token for every running sequence, and retires the finished ones, so a new request joins at the
next token instead of waiting for a whole batch to end. Requests may name a LoRA adapter; PEFT
applies each row's adapter inside the same forward pass (mixed-adapter batches).

The engine is synchronous and single-threaded: :meth:`generate` drives it to completion (the
evaluation job), and :class:`BackgroundEngine` steps it on a thread for the Serve app.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

BASE = "__base__"  # adapter name PEFT uses for "no adapter" in mixed batches


@dataclass
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: Sequence[str] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        self.stop = tuple(s for s in (self.stop or ()) if s)


@dataclass
class Request:
    prompt_ids: list[int]
    params: SamplingParams = field(default_factory=SamplingParams)
    adapter: str | None = None
    on_event: Callable[[Request, str], None] | None = None  # (request, text delta)
    id: str = ""
    # Leading prompt tokens shared with other requests (the system turn, earlier turns): their
    # KV is computed once per (adapter, tokens) and reused. 0 = no shared prefix.
    prefix_len: int = 0
    # filled in by the engine
    out_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None  # stop | length | cancelled | error
    error: str | None = None
    t_submit: float = 0.0
    t_first: float | None = None
    t_done: float | None = None
    cancelled: bool = False
    _emitted: int = 0
    _generator: Any = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def ttft_s(self) -> float | None:
        return None if self.t_first is None else self.t_first - self.t_submit

    @property
    def latency_s(self) -> float | None:
        return None if self.t_done is None else self.t_done - self.t_submit


_ids = itertools.count()


class Engine:
    """Continuous batching over a model with a KV cache (see module docs)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        eos_ids: Sequence[int],
        max_batch_size: int = 16,
        context_len: int = 2048,
        device: str = "cpu",
        adapters: Sequence[str] = (),
        prefix_cache_size: int = 32,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.eos_ids = set(eos_ids)
        self.max_batch_size = max_batch_size
        self.context_len = context_len
        self.device = device
        self.adapters = set(adapters)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self._cache: Any = None
        self._mask: Any = None  # [B, T] 1 = real token
        self._next: Any = None  # [B, 1] token each running row feeds next
        self.lock = threading.Lock()
        self.steps = 0
        self.tokens_out = 0
        # Prefix cache: (adapter, prefix tokens) -> per-layer (K, V) of batch 1, LRU.
        self.prefix_cache_size = prefix_cache_size
        self._prefixes: OrderedDict[tuple[str, tuple[int, ...]], list[tuple[Any, Any]]] = (
            OrderedDict()
        )
        self.prefix_hits = self.prefix_misses = 0

    # -- submitting ----------------------------------------------------------------------------
    def check(
        self, prompt_ids: Sequence[int], params: SamplingParams, adapter: str | None
    ) -> str | None:
        """Why a request cannot run, or None."""
        if adapter not in (None, BASE) and adapter not in self.adapters:
            return f"unknown adapter {adapter!r}"
        if len(prompt_ids) + params.max_tokens > self.context_len:
            return (
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({params.max_tokens}) is "
                f"longer than the model's context ({self.context_len} tokens)"
            )
        return None

    def submit(self, req: Request) -> Request:
        import torch

        why = self.check(req.prompt_ids, req.params, req.adapter)
        if why:
            raise ValueError(why)
        req.id = req.id or f"req-{next(_ids)}"
        req.t_submit = time.perf_counter()
        if req.params.temperature > 0:
            req._generator = torch.Generator(device="cpu")
            if req.params.seed is not None:
                req._generator.manual_seed(req.params.seed)
            else:
                req._generator.seed()
        with self.lock:
            self.waiting.append(req)
        return req

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # -- one iteration -------------------------------------------------------------------------
    def step(self) -> None:
        import torch

        with torch.inference_mode():
            self._drop_cancelled()
            with self.lock:
                room = self.max_batch_size - len(self.running)
                admitted = [self.waiting.popleft() for _ in range(min(room, len(self.waiting)))]
            if admitted:
                self._prefill(admitted)
            if self.running:
                self._decode()
            self._retire()
        self.steps += 1

    def _forward(
        self, input_ids: Any, mask: Any, positions: Any, cache: Any, rows: Sequence[Request]
    ) -> Any:
        def run(**extra: Any) -> Any:
            out = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
            return out.logits[:, -1, :].float()

        if not self.adapters:
            return run()
        names = {r.adapter or BASE for r in rows}
        if len(names) > 1:  # PEFT routes each row through its own adapter
            return run(adapter_names=[r.adapter or BASE for r in rows])
        name = names.pop()  # one adapter for the whole batch: the plain (faster) path
        if name == BASE:
            with self.model.disable_adapter():
                return run()
        if self.model.active_adapter != name:
            self.model.set_adapter(name)
        return run()

    def _prefix_key(self, r: Request) -> tuple[str, tuple[int, ...]] | None:
        if not self.prefix_cache_size or not 0 < r.prefix_len < len(r.prompt_ids):
            return None
        return (r.adapter or BASE, tuple(r.prompt_ids[: r.prefix_len]))

    def _prefix_kv(self, key: tuple[str, tuple[int, ...]], r: Request) -> list[tuple[Any, Any]]:
        """The prefix's K/V, computed alone (batch 1, no padding) so that a hit and a miss
        give the same numbers."""
        import torch
        from transformers import DynamicCache

        if key in self._prefixes:
            self._prefixes.move_to_end(key)
            self.prefix_hits += 1
            return self._prefixes[key]
        self.prefix_misses += 1
        ids = torch.tensor([key[1]], device=self.device)
        mask = torch.ones_like(ids)
        positions = torch.arange(ids.shape[1], device=self.device).view(1, -1)
        cache = DynamicCache()
        self._forward(ids, mask, positions, cache, [r])
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        self._prefixes[key] = kv
        while len(self._prefixes) > self.prefix_cache_size:
            self._prefixes.popitem(last=False)
        return kv

    def _prefill(self, reqs: list[Request]) -> None:
        """Prefill admitted requests: those sharing a cached prefix together (only their
        suffixes run), the rest together from scratch."""
        groups: dict[Any, list[Request]] = {}
        for r in reqs:
            groups.setdefault(self._prefix_key(r), []).append(r)
        for key, group in groups.items():
            self._prefill_group(group, key)

    def _prefill_group(self, reqs: list[Request], key: tuple[str, tuple[int, ...]] | None) -> None:
        import torch
        from transformers import DynamicCache

        skip = len(key[1]) if key else 0
        width = max(len(r.prompt_ids) - skip for r in reqs)
        ids = torch.full((len(reqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(reqs), skip + width), dtype=torch.long)
        mask[:, :skip] = 1  # the cached prefix, then each suffix left-padded to the width
        for i, r in enumerate(reqs):
            n = len(r.prompt_ids) - skip
            ids[i, width - n :] = torch.tensor(r.prompt_ids[skip:])
            mask[i, skip + width - n :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, skip:]
        if key:
            n = len(reqs)
            cache = DynamicCache(
                [
                    (k.expand(n, -1, -1, -1).contiguous(), v.expand(n, -1, -1, -1).contiguous())
                    for k, v in self._prefix_kv(key, reqs[0])
                ]
            )
        else:
            cache = DynamicCache()
        ids, mask, positions = (t.to(self.device) for t in (ids, mask, positions))
        logits = self._forward(ids, mask, positions, cache, reqs)
        tokens = self._sample(logits, reqs)
        now = time.perf_counter()
        for r in reqs:
            r.t_first = now
        self._merge(cache, mask, tokens, reqs)
        self._emit(reqs, tokens)

    def _decode(self) -> None:
        import torch

        rows = self.running
        ones = torch.ones((len(rows), 1), dtype=self._mask.dtype, device=self._mask.device)
        mask = torch.cat([self._mask, ones], dim=1)
        positions = mask.sum(-1, keepdim=True) - 1
        logits = self._forward(self._next, mask, positions, self._cache, rows)
        self._mask = mask
        tokens = self._sample(logits, rows)
        self._next = tokens.view(-1, 1)
        self._emit(rows, tokens)

    def _sample(self, logits: Any, reqs: Sequence[Request]) -> Any:
        import torch

        tokens = logits.argmax(-1)
        for i, r in enumerate(reqs):
            p = r.params
            if p.temperature <= 0:
                continue
            probs = torch.softmax(logits[i] / p.temperature, dim=-1)
            if p.top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                keep = sorted_p.cumsum(-1) - sorted_p < p.top_p
                sorted_p = sorted_p * keep
                probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
            probs = probs.cpu() / probs.sum().cpu()
            tokens[i] = torch.multinomial(probs, 1, generator=r._generator).item()
        return tokens

    def _emit(self, reqs: Sequence[Request], tokens: Any) -> None:
        for r, tok in zip(reqs, tokens.tolist(), strict=True):
            if r.done:
                continue
            self.tokens_out += 1
            if tok in self.eos_ids:
                self._finish(r, "stop")
                continue
            r.out_ids.append(tok)
            text = self.tokenizer.decode(r.out_ids, skip_special_tokens=True)
            stop_at = _find_stop(text, r.params.stop)
            if stop_at is not None:
                r.text = text[:stop_at]
                self._finish(r, "stop")
                continue
            if len(r.out_ids) >= r.params.max_tokens:
                r.text = text.rstrip("\ufffd")
                self._finish(r, "length")
            elif not text.endswith("\ufffd"):  # else half a UTF-8 character: wait for more
                r.text = text
                self._deliver(r)

    def _deliver(self, r: Request) -> None:
        # Hold back text that might be the start of a stop string.
        hold = max((len(s) - 1 for s in r.params.stop), default=0)
        safe = len(r.text) - hold if not r.done else len(r.text)
        if safe > r._emitted:
            self._notify(r, r.text[r._emitted : safe])
        r._emitted = max(r._emitted, safe)

    def _notify(self, r: Request, delta: str) -> None:
        """Call the request's listener; one that fails (its client is gone) cancels only its
        own request, never the batch."""
        if r.on_event is None:
            return
        try:
            r.on_event(r, delta)
        except Exception:
            r.cancelled = True
            r.on_event = None

    def _finish(self, r: Request, reason: str) -> None:
        r.finish_reason = reason
        r.t_done = time.perf_counter()
        self._deliver(r)
        self._notify(r, "")  # the final event: finish_reason is set

    def _drop_cancelled(self) -> None:
        with self.lock:
            for r in [r for r in self.waiting if r.cancelled]:
                self.waiting.remove(r)
                self._finish(r, "cancelled")
        for r in self.running:
            if r.cancelled and not r.done:
                self._finish(r, "cancelled")

    # -- the running batch's KV cache ----------------------------------------------------------
    def _merge(self, cache: Any, mask: Any, tokens: Any, reqs: list[Request]) -> None:
        """Append prefilled rows to the running batch, left-padding the shorter side."""
        import torch
        import torch.nn.functional as F
        from transformers import DynamicCache

        if not self.running:
            self._cache, self._mask, self._next = cache, mask, tokens.view(-1, 1)
            self.running = list(reqs)
            return
        t_old, t_new = self._mask.shape[1], mask.shape[1]
        width = max(t_old, t_new)

        def pad(x: Any, n: int) -> Any:  # pad dim -2 (sequence) on the left for K/V
            return x if n == 0 else F.pad(x, (0, 0, n, 0))

        layers = []
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            keys = torch.cat([pad(old.keys, width - t_old), pad(new.keys, width - t_new)])
            values = torch.cat([pad(old.values, width - t_old), pad(new.values, width - t_new)])
            layers.append((keys, values))
        self._cache = DynamicCache(layers)
        self._mask = torch.cat(
            [F.pad(self._mask, (width - t_old, 0)), F.pad(mask, (width - t_new, 0))]
        )
        self._next = torch.cat([self._next, tokens.view(-1, 1)])
        self.running += reqs

    def _retire(self) -> None:
        """Drop finished rows from the batch and the padding columns nobody needs any more."""
        import torch
        from transformers import DynamicCache

        keep = [i for i, r in enumerate(self.running) if not r.done]
        if len(keep) == len(self.running):
            return
        if not keep:
            self.running, self._cache, self._mask, self._next = [], None, None, None
            return
        idx = torch.tensor(keep, device=self._mask.device)
        mask = self._mask.index_select(0, idx)
        first = int((mask.sum(0) > 0).nonzero()[0])  # leading columns that are all padding
        layers = [
            (
                layer.keys.index_select(0, idx)[:, :, first:],
                layer.values.index_select(0, idx)[:, :, first:],
            )
            for layer in self._cache.layers
        ]
        self._cache = DynamicCache(layers)
        self._mask = mask[:, first:]
        self._next = self._next.index_select(0, idx)
        self.running = [self.running[i] for i in keep]

    # -- synchronous use -----------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[Request]:
        """Run ``requests`` to completion (as one continuously batched workload)."""
        for r in requests:
            self.submit(r)
        while any(not r.done for r in requests):
            self.step()
        return list(requests)


def _find_stop(text: str, stops: Sequence[str]) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


class BackgroundEngine:
    """Steps an :class:`Engine` on a daemon thread whenever it has work."""

    def __init__(self, engine: Engine, num_threads: int | None = None):
        self.engine = engine
        self.num_threads = num_threads
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self.thread.start()

    def submit(self, req: Request) -> Request:
        self.engine.submit(req)
        self._wake.set()
        return req

    def _run(self) -> None:
        import torch

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        while not self._stop.is_set():
            if not self.engine.has_work:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            try:
                self.engine.step()
            except Exception as exc:  # a bad batch must not kill the replica
                self.error = exc
                self._fail_all(f"{type(exc).__name__}: {exc}")

    def _fail_all(self, message: str) -> None:
        eng = self.engine
        with eng.lock:
            victims = list(eng.running) + list(eng.waiting)
            eng.waiting.clear()
        eng.running, eng._cache, eng._mask, eng._next = [], None, None, None
        for r in victims:
            if not r.done:
                r.error = message
                try:
                    eng._finish(r, "error")
                except Exception:  # keep failing the others; the thread must live on
                    r.finish_reason = "error"

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.thread.join(timeout=5)
