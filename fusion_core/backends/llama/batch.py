"""Several replies from one local model in one multi-sequence decode.

A ``SPEC*N`` pool asks one model for N samples of the same prompt at the same moment.
Taking turns, each sample pays a whole decode step per token, and a small model on a
few cores spends most of a step spreading too little work over the threads. Decoding
the N sequences in one llama.cpp batch gives N tokens for much less than N steps.

The :class:`Batcher` of a model collects the requests that reach it within a short
window (the pool starts every member at once), prefills their prompt once into
sequence 0, shares its KV cells with every other sequence (``llama_memory_seq_cp``;
the cache is unified, so nothing is copied), then decodes one token per live sequence
per step. Every sequence has its own sampler chain (temperature, seed, top-k/p, min-p;
greedy at temperature 0), its own stop conditions and its own stream: a sequence that
finishes, or whose stream is closed, leaves the batch and the others go on.

A lone request keeps the single-sequence path (``Llama.generate``) exactly as before.
Batched logits are not bit-identical to single-sequence ones, so a greedy sample in a
batch can differ from the same request run alone; the same pool gives the same text on
every run, because its batches are the same.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fusion_core.backends.base import Chunk
from fusion_core.backends.llama.memory import LocalModel
from fusion_core.backends.llama.prompts import StopScanner
from fusion_core.usage import Usage

if TYPE_CHECKING:
    import llama_cpp

__all__ = ["DONE", "MIN_P", "TOP_K", "TOP_P", "Batcher", "SeqJob", "batcher_for", "common_prefix"]

TOP_K = 40
TOP_P = 0.95
MIN_P = 0.05
# How long the first request waits for the other members of its pool to arrive. They
# all call stream() within one event-loop tick, so a few milliseconds is plenty.
COLLECT_WINDOW_S = 0.005
COLLECT_MAX_S = 0.05

DONE = object()  # the end of one request's stream


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class SeqJob:
    """One streamed request waiting for a model: its prompt, sampling and way back."""

    text: str
    add_bos: bool
    special: bool
    stop: tuple[str, ...]
    lstrip: bool
    temperature: float
    seed: int
    max_tokens: int
    cancel: threading.Event
    emit: Callable[[Any], None]
    alone: Callable[[], None]  # the single-sequence path, when nothing shares the batch
    clock: Callable[[], float] = time.perf_counter
    key: tuple[str, bool, bool] = field(init=False)
    ended: bool = field(default=False, init=False)  # its stream has had DONE

    def __post_init__(self) -> None:
        self.key = (self.text, self.add_bos, self.special)


class Batcher:
    """Collects one model's concurrent requests and decodes those sharing a prompt together."""

    def __init__(self, model: LocalModel) -> None:
        self._model = model
        self._pending: list[SeqJob] = []
        self._lock = threading.Lock()

    def submit(self, job: SeqJob) -> Any:
        """Queue ``job``; returns the worker future (cancel it to unqueue the drain)."""
        with self._lock:
            self._pending.append(job)
        # One drain per job: a drain takes every waiting job it can batch, so later
        # drains find their job served and return at once.
        return self._model.submit(self._drain)

    def _drain(self) -> None:
        try:
            group, tokens = self._take()
        except BaseException as exc:  # e.g. tokenizing failed: nobody may be left waiting
            with self._lock:
                group, self._pending = self._pending, []
            for job in group:
                job.emit(exc)
                job.emit(DONE)
            return
        if not group:
            return
        if len(group) == 1:
            group[0].alone()
            return
        try:
            with self._model.lock:
                _decode_together(self._model, group, tokens)
        except BaseException as exc:  # re-raised in the consumer of every unfinished member
            for job in group:
                if not job.ended:
                    job.emit(exc)
        finally:
            for job in group:
                if not job.ended:
                    job.emit(DONE)

    def _wait_for_members(self) -> int:
        deadline = time.monotonic() + COLLECT_MAX_S
        seen = -1
        while True:
            with self._lock:
                self._pending = [job for job in self._pending if not job.cancel.is_set()]
                count = len(self._pending)
            if count in (0, seen) or count >= self._model.settings.n_seq_max or time.monotonic() >= deadline:
                return count
            seen = count
            time.sleep(COLLECT_WINDOW_S)

    def _take(self) -> tuple[list[SeqJob], list[int]]:
        if self._wait_for_members() == 0:
            return [], []
        with self._lock:
            first = self._pending[0]
            llm = self._model.llama
            tokens = llm.tokenize(first.text.encode("utf-8"), add_bos=first.add_bos, special=first.special)
            room = self._model.n_ctx - len(tokens)
            group: list[SeqJob] = []
            cells = len(tokens)
            for job in self._pending:
                if job.key != first.key or len(group) >= self._model.settings.n_seq_max:
                    continue
                need = min(job.max_tokens, room)
                # The first job always goes: alone, a prompt that does not fit is refused
                # by the single path, with its message.
                if group and (room <= 0 or cells + need > llm.n_ctx()):
                    break
                group.append(job)
                cells += need
            self._pending = [job for job in self._pending if job not in group]
        return group, tokens


_BATCHERS: dict[int, Batcher] = {}
_BATCHERS_LOCK = threading.Lock()


def batcher_for(model: LocalModel) -> Batcher:
    """The process-wide batcher of ``model``."""
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(id(model))
        if batcher is None or batcher._model is not model:
            batcher = _BATCHERS[id(model)] = Batcher(model)
        return batcher


class _Sequence:
    """One member's reply inside a batch: its sampler, stop scanner and usage."""

    def __init__(
        self, job: SeqJob, seq_id: int, llm: llama_cpp.Llama, prompt: list[int], cached: int, room: int
    ) -> None:
        import llama_cpp.llama_cpp as llama_c

        self.job, self.seq_id, self.llm = job, seq_id, llm
        self.prompt, self.cached, self.start = len(prompt), cached, job.clock()
        self.budget = min(job.max_tokens, room)
        self.produced = 0
        self.next_token = prompt[-1]  # every sequence's first step decodes the prompt's last token
        self.scanner = StopScanner(job.stop, lstrip=job.lstrip)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.vocab = llama_c.llama_model_get_vocab(llm.model)
        self.chain = llama_c.llama_sampler_chain_init(llama_c.llama_sampler_chain_default_params())
        if job.temperature <= 0:
            llama_c.llama_sampler_chain_add(self.chain, llama_c.llama_sampler_init_greedy())
        else:  # the order Llama.generate uses
            for sampler in (
                llama_c.llama_sampler_init_top_k(TOP_K),
                llama_c.llama_sampler_init_top_p(TOP_P, 1),
                llama_c.llama_sampler_init_min_p(MIN_P, 1),
                llama_c.llama_sampler_init_temp(job.temperature),
                llama_c.llama_sampler_init_dist(job.seed),
            ):
                llama_c.llama_sampler_chain_add(self.chain, sampler)

    def take(self, token: int) -> bool:
        """Stream ``token``; False when the sequence has ended."""
        import llama_cpp.llama_cpp as llama_c

        if llama_c.llama_vocab_is_eog(self.vocab, token):
            return self.finish("stop")
        self.produced += 1
        self.next_token = token
        text = self.scanner.feed(self.decoder.decode(self.llm.detokenize([token])))
        if text:
            self.job.emit(Chunk(text=text))
        if self.scanner.stopped:
            return self.finish("stop")
        if self.produced >= self.budget:
            return self.finish("length")
        return True

    def finish(self, reason: str) -> bool:
        """Flush held-back text and send usage; always False (the sequence has ended)."""
        tail = self.scanner.feed(self.decoder.decode(b"", final=True)) + self.scanner.flush()
        if tail:
            self.job.emit(Chunk(text=tail))
        usage = Usage(
            prompt_tokens=self.prompt,
            completion_tokens=self.produced,
            cost=0.0,
            cached_tokens=self.cached,
            compute_s=self.job.clock() - self.start,
        )
        self.job.emit(Chunk(usage=usage, finish_reason=reason))
        # End this member's stream now, not when the whole batch ends.
        self.job.ended = True
        self.job.emit(DONE)
        return False


def _decode_together(model: LocalModel, group: Sequence[SeqJob], tokens: list[int]) -> None:
    """Generate every job's reply in one multi-sequence decode (hold the model lock)."""
    import llama_cpp.llama_cpp as llama_c

    llm = model.llama
    for job in group:
        job.emit(Chunk(started=True))
    memory = llama_c.llama_get_memory(llm.ctx)
    # Sequence 0 is the Llama object's own: prefill the prompt minus its last token
    # through Llama.eval so its prefix cache stays valid for the next lone request.
    prefix = tokens[:-1]
    cached = common_prefix(llm.input_ids[: llm.n_tokens].tolist(), prefix)
    for seq_id in range(1, len(group)):
        llama_c.llama_memory_seq_rm(memory, seq_id, -1, -1)
    if not llama_c.llama_memory_seq_rm(memory, 0, cached, -1):  # a partial removal can fail: start clean
        llama_c.llama_memory_clear(memory, True)
        cached = 0
    llm.n_tokens = cached
    if prefix[cached:]:
        llm.eval(prefix[cached:])
    for seq_id in range(1, len(group)):
        llama_c.llama_memory_seq_cp(memory, 0, seq_id, -1, -1)
    room = model.n_ctx - len(tokens)
    seqs = [_Sequence(job, i, llm, tokens, cached if i == 0 else len(prefix), room) for i, job in enumerate(group)]
    batch = llama_c.llama_batch_init(len(group), 0, 1)
    try:
        live, pos = list(seqs), len(prefix)
        while live:
            for seq in [s for s in live if s.job.cancel.is_set()]:
                seq.finish("cancelled")
                llama_c.llama_memory_seq_rm(memory, seq.seq_id, len(prefix), -1)
            live = [s for s in live if not s.job.cancel.is_set()]
            if not live:
                break
            batch.n_tokens = len(live)
            for i, seq in enumerate(live):
                batch.token[i] = seq.next_token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq.seq_id
                batch.logits[i] = True
            if llama_c.llama_decode(llm.ctx, batch) != 0:
                raise RuntimeError("llama_decode failed in a batch of samples")
            still = []
            for i, seq in enumerate(live):
                if seq.take(llama_c.llama_sampler_sample(seq.chain, llm.ctx, i)):
                    still.append(seq)
                else:  # free its cells now: the rest of the batch may need them
                    llama_c.llama_memory_seq_rm(memory, seq.seq_id, len(prefix), -1)
            live, pos = still, pos + 1
    finally:
        llama_c.llama_batch_free(batch)
        for seq in seqs:
            llama_c.llama_sampler_free(seq.chain)
        for seq_id in range(1, len(group)):
            llama_c.llama_memory_seq_rm(memory, seq_id, -1, -1)
        # Llama's own bookkeeping must match sequence 0, and its last logits are now stale.
        kept = min(llm.n_tokens, len(prefix))  # less only if the prefill itself failed
        llm.n_tokens = kept if llama_c.llama_memory_seq_rm(memory, 0, kept, -1) else 0
        if not llm.n_tokens:
            llama_c.llama_memory_clear(memory, True)
        llm._requires_eval = True
