"""The llama.cpp backend with the real embedded Gemma 3 270M base model (no fakes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fusion_core.backends.base import Backend, ChatRequest, Chunk, Message, complete
from fusion_core.backends.llama.backend import LlamaBackend, LocalModel, local_backend
from fusion_core.backends.llama.memory import (
    check_memory_fits,
    estimate_memory,
    read_gguf_metadata,
)
from fusion_core.backends.llama.models import embedded_model_ready, prepare_embedded_model
from fusion_core.backends.llama.prompts import (
    CODE_STOPS,
    QA_STOPS,
    StopScanner,
    build_prompt,
    detect_instruct,
    format_base_prompt,
    reads_as_continuation,
)
from fusion_core.config import LocalConfig
from fusion_core.errors import BadRequest, ConfigError, ModelLoadError

pytestmark = pytest.mark.local

MAX_TOKENS = 24
IS_EVEN = "def is_even(n):\n"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> LocalConfig:
    """A small context and a private cache dir the embedded model is assembled into."""
    return LocalConfig(n_ctx=512, cache_dir=str(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def gemma(config: LocalConfig) -> tuple[LlamaBackend, str]:
    """The embedded model's process-wide backend (loaded on first use)."""
    return local_backend("local/gemma-3-270m", config)


def ask(model_id: str, text: str, **options: object) -> ChatRequest:
    options.setdefault("max_tokens", MAX_TOKENS)
    return ChatRequest(model=model_id, messages=(Message("user", text),), **options)  # type: ignore[arg-type]


async def test_streams_several_chunks_and_ends_with_local_usage(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    assert isinstance(backend, Backend)
    chunks: list[Chunk] = [c async for c in backend.stream(ask(model_id, "def fib(n):", temperature=0))]
    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 3
    last = chunks[-1]
    assert last.usage is not None and last.finish_reason in {"stop", "length"}
    assert last.usage.cost == 0.0 and last.usage.compute_s > 0
    assert last.usage.prompt_tokens > 0 and 0 < last.usage.completion_tokens <= MAX_TOKENS


async def test_greedy_continuation_of_a_function_returns(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    done = await complete(backend, ask(model_id, "def is_prime(n):", temperature=0))
    assert "return" in done.text


async def test_different_seeds_give_different_samples(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    one = await complete(backend, ask(model_id, "def fib(n):", temperature=1.0, seed=1))
    two = await complete(backend, ask(model_id, "def fib(n):", temperature=1.0, seed=2))
    again = await complete(backend, ask(model_id, "def fib(n):", temperature=1.0, seed=1))
    assert one.text != two.text
    assert one.text == again.text
    # The second and third samples reuse the first one's evaluated prompt.
    assert two.usage.cached_tokens == two.usage.prompt_tokens - 1


async def test_closing_the_stream_stops_generation_and_frees_the_model(
    gemma: tuple[LlamaBackend, str],
) -> None:
    backend, model_id = gemma
    request = ask(model_id, "The history of the Roman Empire", temperature=1.0, seed=3)
    stream = backend.stream(request)
    received = 0
    async for chunk in stream:
        received += bool(chunk.text)
        if received == 2:
            break
    await stream.aclose()
    # Queued behind the cancelled job on the model's thread: runs once the lock is released.
    llm = backend.model.llama
    evaluated = await backend.model.run(lambda: llm.n_tokens)
    prompt_tokens = len(llm.tokenize(request.messages[0].content.encode()))
    assert evaluated - prompt_tokens < MAX_TOKENS // 2

    second = backend.stream(ask(model_id, "def add(a, b):", temperature=0))
    # The next request gets the model (no timed bound: a loaded machine makes any one flaky).
    assert (await anext(second)).queued
    assert (await anext(second)).started
    await second.aclose()


async def test_cancelling_the_consuming_task_stops_generation(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    request = ask(model_id, "Once upon a time", temperature=1.0, seed=4)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in backend.stream(request):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    llm = backend.model.llama
    evaluated = await backend.model.run(lambda: llm.n_tokens)
    assert evaluated - len(llm.tokenize(request.messages[0].content.encode())) < MAX_TOKENS // 2


async def test_the_model_loads_once_for_every_spec_of_the_same_file(
    gemma: tuple[LlamaBackend, str],
    config: LocalConfig,
) -> None:
    backend, model_id = gemma
    await complete(backend, ask(model_id, "x = 1", temperature=0, max_tokens=2))
    path = backend.model.path
    by_path, path_id = local_backend(f"gguf:{path}", config)
    assert by_path is backend and path_id == path.name
    llama = backend.model.llama
    results = await asyncio.gather(
        *(complete(by_path, ask(model_id, "y = 2", temperature=0.7, seed=s, max_tokens=4)) for s in range(3))
    )
    assert all(r.usage.completion_tokens > 0 for r in results)
    assert backend.model.llama is llama and backend.model.load_count == 1
    # An instruct override is a different backend over the very same loaded model.
    forced, _ = local_backend("local/gemma-3-270m", LocalConfig(n_ctx=512, cache_dir=config.cache_dir, instruct=True))
    assert forced is not backend and forced.model is backend.model
    assert await forced.is_instruct() and not await backend.is_instruct()
    assert backend.model.load_count == 1


async def test_likelihood_scores_rank_correct_above_wrong_above_unrelated(
    gemma: tuple[LlamaBackend, str],
) -> None:
    backend, _ = gemma
    candidates = ["    return n % 2 == 0\n", "    return n % 2 == 1\n", "    print('hello world')\n"]
    correct, wrong, unrelated = await backend.score(IS_EVEN, candidates)
    assert correct > wrong > unrelated
    assert -1.0 < correct < 0.0
    # The prompt is evaluated once: scoring again ranks the same way, to the same numbers.
    assert await backend.score(IS_EVEN, candidates) == pytest.approx([correct, wrong, unrelated], abs=1e-3)
    with_reviewer = await backend.score(IS_EVEN, candidates, reviewer=True)
    assert with_reviewer[0] > with_reviewer[2]
    assert (await backend.score(IS_EVEN, [""]))[0] == float("-inf")


async def test_generation_after_scoring_matches_generation_before(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    before = await complete(backend, ask(model_id, IS_EVEN, temperature=0, max_tokens=8))
    await backend.score(IS_EVEN + "    ", ["return n % 2 == 0\n"])
    after = await complete(backend, ask(model_id, IS_EVEN, temperature=0, max_tokens=8))
    assert after.text == before.text


async def test_stop_sequences_end_the_reply(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    free = await complete(backend, ask(model_id, "def is_prime(n):", temperature=0))
    cut = free.text.index("return")
    stopped = await complete(backend, ask(model_id, "def is_prime(n):", temperature=0, stop=("return",)))
    assert stopped.text == free.text[:cut] and stopped.finish_reason == "stop"


async def test_a_prompt_longer_than_the_context_is_a_bad_request(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    # The fixture gives each sequence 512 tokens; scoring may use the whole context, which
    # also holds 256 reply tokens for each of the 7 other sequences a batch can decode.
    too_long = "word " * 3000
    with pytest.raises(BadRequest, match="context holds 512"):
        await complete(backend, ask(model_id, too_long))
    with pytest.raises(BadRequest, match="context holds 2304") as info:
        await backend.score(too_long, ["x"])
    assert "n_ctx" in info.value.hint
    # The model is still usable afterwards.
    assert (await complete(backend, ask(model_id, "def f(x):", temperature=0, max_tokens=4))).text


async def test_a_json_schema_constrains_the_reply(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    schema = {"type": "object", "properties": {"winner": {"enum": ["A", "B"]}}, "required": ["winner"]}
    done = await complete(
        backend, ask(model_id, "Which candidate is best? Reply in JSON.", json_schema=schema, temperature=0)
    )
    assert json.loads(done.text) in ({"winner": "A"}, {"winner": "B"})


def test_an_unconfigured_big_gemma_says_how_to_get_it() -> None:
    with pytest.raises(ConfigError) as info:
        local_backend("local/gemma-3-27b", LocalConfig())
    assert "huggingface-cli download google/gemma-3-27b" in info.value.hint
    assert "[local.models] gemma-3-27b" in info.value.hint


def test_an_unknown_local_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        local_backend("local/nope", LocalConfig(models={"mine": "/m.gguf"}))
    assert "local/gemma-3-270m" in info.value.hint and "local/mine" in info.value.hint


async def test_a_missing_gguf_file_is_a_model_load_error() -> None:
    backend, model_id = local_backend("gguf:/nonexistent.gguf", LocalConfig())
    assert model_id == "nonexistent.gguf"
    with pytest.raises(ModelLoadError) as info:
        await complete(backend, ask(model_id, "hi"))
    assert "/nonexistent.gguf" in info.value.message and info.value.hint


async def test_a_file_that_is_not_gguf_is_a_model_load_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model")
    backend, model_id = local_backend(f"gguf:{bogus}", LocalConfig())
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        await backend.score("a", ["b"])


def test_the_memory_check_refuses_what_cannot_fit(gemma: tuple[LlamaBackend, str]) -> None:
    path = gemma[0].model.path
    prepare_embedded_model(str(path.parent))
    estimate = estimate_memory(path.stat().st_size, 4096, read_gguf_metadata(path))
    # 18 layers x 1 KV head x (256 + 256) x 2 bytes per token.
    assert estimate.kv_cache_bytes == 4096 * 18 * 512 * 2
    check_memory_fits(estimate, available_bytes=estimate.total_bytes)
    with pytest.raises(ModelLoadError) as info:
        check_memory_fits(estimate, available_bytes=estimate.total_bytes // 2, model="gemma")
    assert "GB" in info.value.message and "n_ctx" in info.value.hint


async def test_the_backend_refuses_to_load_without_enough_ram(gemma: tuple[LlamaBackend, str]) -> None:
    starved = LlamaBackend(LocalModel(gemma[0].model.path, memory_probe=lambda: 100_000_000))
    with pytest.raises(ModelLoadError, match="only 0.1 GB"):
        await complete(starved, ask("gemma", "hi"))
    assert not starved.model.loaded


def test_the_embedded_model_is_assembled_once_with_progress(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    assert not embedded_model_ready(cache)
    seen: list[tuple[int, int]] = []
    path = prepare_embedded_model(cache, progress=lambda done, total: seen.append((done, total)))
    assert embedded_model_ready(cache) and path.stat().st_size == seen[-1][1]
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert list(path.parent.iterdir()) == [path]  # no partial file left behind


def test_the_embedded_model_is_a_base_model(gemma: tuple[LlamaBackend, str]) -> None:
    metadata = read_gguf_metadata(gemma[0].model.path)
    assert not detect_instruct(metadata)
    assert detect_instruct({**metadata, "general.finetune": "it"})
    assert detect_instruct({"general.name": "gemma-3-27b-it", "tokenizer.chat_template": "{{x}}"})
    assert not detect_instruct({"general.name": "Gemma 3 4b pt", "tokenizer.chat_template": "{{x}}"})


def test_base_prompts_continue_code_and_frame_questions() -> None:
    code = format_base_prompt([Message("system", "Be terse."), Message("user", "def fib(n):")])
    assert code.text == "def fib(n):" and code.stop == CODE_STOPS
    qa = format_base_prompt([Message("user", "What is 2 + 2?")])
    assert qa.text == "Question: What is 2 + 2?\nAnswer:" and qa.stop == QA_STOPS and qa.lstrip
    history = format_base_prompt(
        [
            Message("system", "You are terse."),
            Message("user", "Hi"),
            Message("assistant", "Hello."),
            Message("user", "Name a colour"),
        ]
    )
    assert history.text == ("You are terse.\n\nQuestion: Hi\nAnswer: Hello.\n\nQuestion: Name a colour\nAnswer:")
    assert reads_as_continuation("The capital of France is")
    assert not reads_as_continuation("Write a function that reverses a string")
    assert not reads_as_continuation("Fix this:\n```python\nx = 1\n```")


def test_instruct_gemma_prompts_use_turns() -> None:
    plan = build_prompt(
        [Message("system", "Be brief."), Message("user", "Hi")],
        instruct=True,
        metadata={"general.architecture": "gemma3"},
    )
    assert plan.text == ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n")
    assert plan.special and not plan.add_bos and "<end_of_turn>" in plan.stop
    template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}[assistant]"
    rendered = build_prompt(
        [Message("user", "Hi")], instruct=True, metadata={"tokenizer.chat_template": template}, bos="<s>", eos="</s>"
    )
    assert rendered.text == "<s>[user]Hi[assistant]" and not rendered.add_bos and "</s>" in rendered.stop


def test_the_stop_scanner_holds_back_partial_stops() -> None:
    scanner = StopScanner(["\n\n", "\nQuestion:"], lstrip=True)
    assert scanner.feed("\n ") == ""
    assert scanner.feed("Paris\n") == "Paris"
    assert scanner.feed("Quest") == ""
    assert scanner.feed("ion: next") == "" and scanner.stopped
    open_ended = StopScanner(["END"])
    assert open_ended.feed("the E") == "the " and open_ended.flush() == "E"
