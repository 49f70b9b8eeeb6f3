"""The in-process llama.cpp backend: local GGUF models (``local/NAME``, ``gguf:/path``).

One :class:`LocalModel` per model file (and load settings) per process: however many pool members
or specs name the same file, the weights load once, lazily, in a worker
thread. A llama.cpp context is not thread-safe, so every use of a model runs
on that model's single worker thread and under its lock. Pool members of the same model that arrive together
with the same prompt (a ``SPEC*N`` pool) decode as one multi-sequence batch
(:mod:`fusion_core.backends.llama.batch`); a lone request, or one constrained by a
JSON schema, takes turns, reusing the previous request's evaluated prompt
(llama-cpp-python keeps the KV cache of the longest common token prefix).

Generation streams tokens back to the event loop as they are produced;
closing the stream sets a flag the worker checks before every token. The
likelihood judge (:meth:`LlamaBackend.score`) decodes the candidates' tokens
together on top of the cached prompt and reads their logits directly
(:mod:`fusion_core.backends.llama.score`).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion_core.backends.base import ChatRequest, Chunk, Message
from fusion_core.backends.llama.batch import DONE, MIN_P, TOP_K, TOP_P, SeqJob, batcher_for, common_prefix
from fusion_core.backends.llama.memory import BACKEND_NAME, LoadSettings, LocalModel
from fusion_core.backends.llama.models import (
    EMBEDDED_MODEL,
    GGUF_PREFIX,
    embedded_model_ready,
    prepare_embedded_model,
    require_local_extra,
    resolve_model_path,
)
from fusion_core.backends.llama.prompts import PromptPlan, StopScanner, build_prompt, detect_instruct
from fusion_core.backends.llama.score import mean_logprobs, refresh_last_logits
from fusion_core.config import LocalConfig
from fusion_core.errors import BackendError, BadRequest, FusionError
from fusion_core.usage import Usage

if TYPE_CHECKING:  # imported on first use, so a missing [local] extra is a ModelLoadError
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

_log = logging.getLogger(__name__)

__all__ = [
    "LlamaBackend",
    "LoadSettings",
    "LocalModel",
    "embedded_model_ready",
    "local_backend",
    "prepare_embedded_model",
]

DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.8


@dataclass(frozen=True)
class _Sampling:
    temperature: float
    max_tokens: int
    seed: int
    json_schema: str | None = None


class LlamaBackend:
    """The Backend protocol over one in-process llama.cpp model."""

    def __init__(
        self, model: LocalModel, *, instruct: bool | None = None, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.name = BACKEND_NAME
        self.model = model
        self._instruct_override = instruct
        self._clock = clock

    async def load(self) -> None:
        """Load the model now (off the event loop) instead of on first use."""
        if not self.model.loaded:
            await self.model.run(self.model.load)

    async def is_instruct(self) -> bool:
        """Whether prompts get the chat template (instruction-tuned) or document framing (base)."""
        if self._instruct_override is not None:
            return self._instruct_override
        await self.load()
        return detect_instruct(self.model.metadata)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Stream the reply, generated in the model's worker thread; closing it stops generation."""
        await self.load()
        plan = await self.prompt_plan(request.messages, request.stop)
        sampling = _Sampling(
            temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
            # llama.cpp seeds are uint32.
            seed=random.randrange(2**31) if request.seed is None else request.seed & 0xFFFFFFFF,
            json_schema=json.dumps(request.json_schema) if request.json_schema else None,
        )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancel.set()

        def work() -> None:
            try:
                self._generate(plan, sampling, cancel, emit, request.model)
            except BaseException as exc:  # re-raised in the consumer below
                emit(exc)
            finally:
                emit(DONE)

        if sampling.json_schema is None:  # grammar-constrained replies keep the single path
            job = batcher_for(self.model).submit(
                SeqJob(
                    text=plan.text,
                    add_bos=plan.add_bos,
                    special=plan.special,
                    stop=plan.stop,
                    lstrip=plan.lstrip,
                    temperature=sampling.temperature,
                    seed=sampling.seed,
                    max_tokens=sampling.max_tokens,
                    cancel=cancel,
                    emit=emit,
                    alone=work,
                    clock=self._clock,
                )
            )
        else:
            job = self.model.submit(work)
        try:
            yield Chunk(queued=True)  # the model may be busy: a pool's timeout waits for `started`
            while (item := await queue.get()) is not DONE:
                if isinstance(item, FusionError):
                    raise item
                if isinstance(item, BaseException):
                    raise self._translate(item, request.model) from item
                yield item
        finally:
            # Stop at the next token (or before starting, if still queued behind the lock).
            cancel.set()
            job.cancel()

    async def score(
        self, prompt: str, continuations: Sequence[str], *, reviewer: bool = False, batched: bool = True
    ) -> list[float]:
        """Each continuation's mean per-token log-probability given ``prompt``.

        The continuations are scored together in one multi-sequence decode over the shared
        prompt (:mod:`fusion_core.backends.llama.score`); ``batched=False``, or
        ``[local] n_seq_max = 1``, scores them one after another. With ``reviewer``
        (Coder-Reviewer reranking) the mean log-probability of the prompt given the
        continuation is added; it costs one extra prefill per candidate.
        An empty continuation scores ``-inf``.
        """
        await self.load()
        max_seqs = self.model.settings.n_seq_max if batched else 1

        def work() -> list[float]:
            llm = self.model.llama
            with self.model.lock:
                try:
                    return self._score(llm, prompt, continuations, reviewer, max_seqs)
                finally:
                    refresh_last_logits(llm)

        try:
            return await self.model.run(work)
        except FusionError:
            raise
        except Exception as exc:
            raise self._translate(exc, self.model.path.name) from exc

    @staticmethod
    def _score(
        llm: llama_cpp.Llama, prompt: str, continuations: Sequence[str], reviewer: bool, max_seqs: int
    ) -> list[float]:
        conts = [llm.tokenize(text.encode("utf-8"), add_bos=False) for text in continuations]
        context = llm.tokenize(prompt.encode("utf-8"), add_bos=True)
        present = [i for i, cont in enumerate(conts) if cont]
        scores = [float("-inf")] * len(conts)
        found = mean_logprobs(llm, context, [conts[i] for i in present], max_seqs=max_seqs)
        for i, score in zip(present, found, strict=True):
            scores[i] = score
        if reviewer:
            back = llm.tokenize(prompt.encode("utf-8"), add_bos=False)
            for i in present if back else ():
                back_context = llm.tokenize(continuations[i].encode("utf-8") + b"\n", add_bos=True)
                scores[i] += mean_logprobs(llm, back_context, [back], max_seqs=1)[0]
        return scores

    async def prompt_plan(self, messages: Sequence[Message], stop: Sequence[str] = ()) -> PromptPlan:
        """The exact prompt text and stop sequences this model gets for ``messages``."""
        instruct = await self.is_instruct()
        try:
            plan = build_prompt(
                messages,
                instruct=instruct,
                metadata=self.model.metadata,
                bos=self.model.bos_text,
                eos=self.model.eos_text,
            )
        except Exception as exc:  # a broken Jinja template in the GGUF
            raise BadRequest(
                f"cannot render the chat template of {self.model.path}: {exc}",
                backend=self.name,
                model=str(self.model.path),
                hint="Set [local] instruct = false to use plain document prompts.",
            ) from exc
        stops = plan.stop + tuple(s for s in stop if s not in plan.stop)
        return PromptPlan(text=plan.text, stop=stops, special=plan.special, add_bos=plan.add_bos, lstrip=plan.lstrip)

    def _translate(self, exc: BaseException, model: str) -> BackendError:
        return BackendError(
            f"llama.cpp failed: {exc}",
            backend=self.name,
            model=model,
            hint="Try a smaller prompt or max_tokens, or a larger [local] n_ctx.",
        )

    def _generate(
        self, plan: PromptPlan, sampling: _Sampling, cancel: threading.Event, emit: Callable[[Any], None], model_id: str
    ) -> None:
        import llama_cpp.llama_cpp as llama_c

        with self.model.lock:
            if cancel.is_set():
                return
            emit(Chunk(started=True))
            start = self._clock()
            llm = self.model.llama
            tokens = llm.tokenize(plan.text.encode("utf-8"), add_bos=plan.add_bos, special=plan.special)
            n_ctx = self.model.n_ctx  # the context holds more cells, for the other sequences of a batch
            if len(tokens) >= n_ctx:
                raise BadRequest(
                    f"the prompt is {len(tokens)} tokens; the context holds {n_ctx}",
                    backend=self.name,
                    model=model_id,
                    hint="Shorten the prompt or raise [local] n_ctx in fusion.toml.",
                )
            budget = min(sampling.max_tokens, n_ctx - len(tokens))
            # Same prompt as the previous sample: llama-cpp-python keeps these tokens' KV cache.
            cached = min(common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens), len(tokens) - 1)
            llm.set_seed(sampling.seed)
            vocab = llama_c.llama_model_get_vocab(llm.model)
            scanner = StopScanner(plan.stop, lstrip=plan.lstrip)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            produced, finish = 0, "length"
            tokens_out = llm.generate(
                tokens,
                temp=sampling.temperature,
                top_k=TOP_K,
                top_p=TOP_P,
                min_p=MIN_P,
                repeat_penalty=1.0,
                grammar=_json_grammar(sampling.json_schema),
            )
            try:
                for token in tokens_out:
                    if cancel.is_set():
                        finish = "cancelled"
                        break
                    if llama_c.llama_vocab_is_eog(vocab, token):
                        finish = "stop"
                        break
                    produced += 1
                    text = scanner.feed(decoder.decode(llm.detokenize([token])))
                    if text:
                        emit(Chunk(text=text))
                    if scanner.stopped:
                        finish = "stop"
                        break
                    if produced >= budget:
                        break
            finally:
                tokens_out.close()
            tail = scanner.feed(decoder.decode(b"", final=True)) + scanner.flush()
            if tail:
                emit(Chunk(text=tail))
            usage = Usage(
                prompt_tokens=len(tokens),
                completion_tokens=produced,
                cost=0.0,
                cached_tokens=cached,
                compute_s=self._clock() - start,
            )
            emit(Chunk(usage=usage, finish_reason=finish))


def _json_grammar(schema: str | None) -> LlamaGrammar | None:
    """A grammar that makes the reply follow ``schema`` (about 2x slower per token), if it converts."""
    if schema is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema, verbose=False)
    except Exception as exc:  # an unsupported schema feature: the reply is then unconstrained
        _log.debug("json_schema not enforced: %s", exc)
        return None


_CACHE_LOCK = threading.Lock()
_MODELS: dict[tuple[Path, LoadSettings], LocalModel] = {}
_BACKENDS: dict[tuple[Path, LoadSettings, bool | None], LlamaBackend] = {}


def local_backend(spec: str, config: LocalConfig) -> tuple[LlamaBackend, str]:
    """The process-wide backend for a ``local/NAME`` or ``gguf:/path`` spec, and its model id."""
    require_local_extra()  # a missing extra is a usage error, found before any run starts
    path, embedded = resolve_model_path(spec, config)
    key_path = path.resolve()
    settings = LoadSettings.from_config(config)
    with _CACHE_LOCK:
        model = _MODELS.get((key_path, settings))
        if model is None:
            model = LocalModel(path, settings, embedded=embedded, embedded_cache_dir=config.cache_dir)
            _MODELS[(key_path, settings)] = model
        backend = _BACKENDS.get((key_path, settings, config.instruct))
        if backend is None:
            backend = LlamaBackend(model, instruct=config.instruct)
            _BACKENDS[(key_path, settings, config.instruct)] = backend
    model_id = EMBEDDED_MODEL if embedded else (path.name if spec.startswith(GGUF_PREFIX) else spec.split("/", 1)[1])
    return backend, model_id
