"""Getting a GGUF model into memory: the fit check before loading, and the one load.

llama.cpp happily starts loading a 17 GB model on a 16 GB machine and the
kernel's OOM killer ends the whole process, taking the other pool members
with it. So before loading we read the GGUF header (no tensors, no weights),
estimate weights + KV cache + scratch buffers, and refuse with numbers and a
fix when it cannot fit.

:class:`LocalModel` then loads the file once, quietly, and owns the lock and
the single worker thread through which every use of the model goes.
llama-cpp-python is imported only when a model is actually loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import mmap
import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fusion_core.backends.llama.hardware import cores, cpu_has_amx, default_threads, gpu_layers_for
from fusion_core.backends.llama.models import LOCAL_EXTRA_HINT, embedded_model_ready, prepare_embedded_model
from fusion_core.config import LocalConfig
from fusion_core.errors import ModelLoadError

if TYPE_CHECKING:
    import llama_cpp

__all__ = [
    "LoadSettings",
    "LocalModel",
    "MemoryEstimate",
    "available_memory_bytes",
    "check_memory_fits",
    "estimate_memory",
    "read_gguf_metadata",
]

BACKEND_NAME = "llama.cpp"
DEFAULT_N_CTX = 2048
DEFAULT_N_BATCH = 512
# Sequences one context decodes together (a ``SPEC*N`` pool of up to 8 runs as one batch);
# [local] n_seq_max = 1 makes samples and scoring run one after another.
DEFAULT_N_SEQ_MAX = 8
MAX_SEQ_MAX = 64
# KV cells reserved for each extra sequence's reply: the shared prompt is stored once
# (kv_unified), so a batch of N needs n_ctx + (N - 1) replies' worth of cells.
SEQ_RESERVE_TOKENS = 256
GGUF_MAGIC = b"GGUF"
MEMINFO_PATH = Path("/proc/meminfo")
# f16 K and V caches: llama.cpp's default cache type.
KV_BYTES_PER_VALUE = 2
# When the header does not say how wide the KV cache is: about a 30B model's worth per token.
FALLBACK_KV_BYTES_PER_TOKEN = 1 << 20
# Compute buffers, logits and the process itself: measured ~100 MB for the 270M model at
# n_ctx 2048, so a fixed floor plus a share of the weights stays on the safe side.
OVERHEAD_FIXED_BYTES = 256 << 20
OVERHEAD_WEIGHTS_FRACTION = 0.05
GB = 1e9
CONTEXT_KEY_SUFFIX = ".context_length"
LOG_TAIL_LINES = 20
# ggml's log levels (ggml.h): llama-cpp-python's own table predates DEBUG=1 and prints warnings.
GGML_LOG_WARN = 3
INSTALL_HINT = LOCAL_EXTRA_HINT

_log = logging.getLogger(__name__)
_llama_log_tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
T = TypeVar("T")

_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class _Reader:
    """A cursor over the mmapped header; every read is bounds-checked by struct."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.unpack("<Q")
        raw = self.buf[self.pos : self.pos + size]
        self.pos += size
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            self.skip_array()
            return None  # arrays (token lists, per-layer values) are not needed here
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise ValueError(f"unknown GGUF value type {kind}")
        return self.unpack(fmt)

    def skip_array(self) -> None:
        kind = self.unpack("<I")
        count = self.unpack("<Q")
        fmt = _SCALARS.get(kind)
        if fmt is not None:
            self.pos += struct.calcsize(fmt) * count
            return
        for _ in range(count):
            if kind == _STRING:
                size = self.unpack("<Q")  # read first: `pos += unpack()` would lose the advance
                self.pos += size
            elif kind == _ARRAY:
                self.skip_array()
            else:
                raise ValueError(f"unknown GGUF array type {kind}")


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """The scalar and string key/values of a GGUF header (arrays are skipped)."""
    path = Path(path)
    try:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:4] != GGUF_MAGIC:
                raise ModelLoadError(
                    f"{path} is not a GGUF file (bad magic {buf[:4]!r})",
                    backend=BACKEND_NAME,
                    model=str(path),
                    hint="Pass a .gguf model file (llama.cpp's format).",
                )
            reader = _Reader(buf)
            reader.pos = 4
            version = reader.unpack("<I")
            if version < 2:
                raise ModelLoadError(
                    f"{path}: GGUF version {version} is too old",
                    backend=BACKEND_NAME,
                    model=str(path),
                    hint="Re-convert the model with a current llama.cpp.",
                )
            reader.unpack("<Q")  # tensor count
            count = reader.unpack("<Q")
            metadata: dict[str, Any] = {}
            for _ in range(count):
                key = reader.string()
                metadata[key] = reader.value(reader.unpack("<I"))
            return metadata
    except ModelLoadError:
        raise
    except (OSError, ValueError, struct.error) as exc:
        raise ModelLoadError(
            f"cannot read the GGUF header of {path}: {exc}",
            backend=BACKEND_NAME,
            model=str(path),
            hint="Check that the file exists, is readable and is a complete .gguf download.",
        ) from exc


@dataclass(frozen=True)
class MemoryEstimate:
    """What loading one model with one context size is expected to take, in bytes."""

    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    n_ctx: int
    kv_estimated_from_header: bool = True

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes


def _int(metadata: Mapping[str, Any], key: str) -> int | None:
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def kv_bytes_per_token(metadata: Mapping[str, Any]) -> int | None:
    """KV cache bytes per context token from the header, or None when it does not say."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        return None
    layers = _int(metadata, f"{arch}.block_count")
    heads = _int(metadata, f"{arch}.attention.head_count")
    kv_heads = _int(metadata, f"{arch}.attention.head_count_kv") or heads
    embd = _int(metadata, f"{arch}.embedding_length")
    if layers is None or kv_heads is None:
        return None
    head_dim = embd // heads if embd and heads else None
    key_len = _int(metadata, f"{arch}.attention.key_length") or head_dim
    value_len = _int(metadata, f"{arch}.attention.value_length") or head_dim
    if key_len is None or value_len is None:
        return None
    return layers * kv_heads * (key_len + value_len) * KV_BYTES_PER_VALUE


def estimate_memory(weights_bytes: int, n_ctx: int, metadata: Mapping[str, Any]) -> MemoryEstimate:
    """Estimate the RAM a model needs: weights + KV cache for ``n_ctx`` + scratch."""
    per_token = kv_bytes_per_token(metadata)
    from_header = per_token is not None
    kv = n_ctx * (per_token if per_token is not None else FALLBACK_KV_BYTES_PER_TOKEN)
    overhead = OVERHEAD_FIXED_BYTES + int(weights_bytes * OVERHEAD_WEIGHTS_FRACTION)
    return MemoryEstimate(
        weights_bytes=weights_bytes,
        kv_cache_bytes=kv,
        overhead_bytes=overhead,
        n_ctx=n_ctx,
        kv_estimated_from_header=from_header,
    )


def available_memory_bytes(meminfo: Path = MEMINFO_PATH) -> int | None:
    """MemAvailable from /proc/meminfo, or None where the kernel does not say (not Linux)."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    return None


def check_memory_fits(estimate: MemoryEstimate, available_bytes: int | None, *, model: str = "") -> None:
    """Raise ModelLoadError when ``estimate`` exceeds ``available_bytes`` (None: cannot tell)."""
    if available_bytes is None or estimate.total_bytes <= available_bytes:
        return
    kv_note = "" if estimate.kv_estimated_from_header else " (KV size guessed)"
    raise ModelLoadError(
        f"{model or 'the model'} needs about {estimate.total_bytes / GB:.1f} GB "
        f"(weights {estimate.weights_bytes / GB:.1f} GB + KV cache "
        f"{estimate.kv_cache_bytes / GB:.1f} GB for n_ctx={estimate.n_ctx}{kv_note} + "
        f"{estimate.overhead_bytes / GB:.1f} GB scratch) but only "
        f"{available_bytes / GB:.1f} GB of RAM is available",
        backend=BACKEND_NAME,
        model=model,
        hint="Use a smaller quantisation (e.g. Q4_K_M or Q3_K_M instead of Q8_0), a smaller "
        "model, or a smaller context: [local] n_ctx = 1024 in fusion.toml. "
        "Closing other programs frees RAM too.",
    )


def _quiet_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp writes to stderr even with verbose=False; keep warnings for error messages.
    if level >= GGML_LOG_WARN and text:
        line = text.decode("utf-8", errors="replace").strip()
        if line:
            _llama_log_tail.append(line)
            _log.debug("llama.cpp: %s", line)


# A module global: llama.cpp keeps the pointer, so the ctypes thunk must never be collected.
_quiet_log_thunk: Any = None


def _install_quiet_log() -> None:
    global _quiet_log_thunk
    if _quiet_log_thunk is None:
        import llama_cpp.llama_cpp as llama_c

        _quiet_log_thunk = llama_c.llama_log_callback(_quiet_log)
        llama_c.llama_log_set(_quiet_log_thunk, ctypes.c_void_p(0))


@contextlib.contextmanager
def _patched_params(*, n_seq_max: int, extra_buffer_types: bool) -> Iterator[None]:
    # Llama() has no n_seq_max, kv_unified or use_extra_bufts argument: swap the params
    # factories it calls, only while we construct. ggml's AMX matmul segfaults under KVM on
    # Sapphire Rapids guests; a unified KV cache lets every sequence of a batch share the
    # prompt's cells and measured faster than one split cache per sequence.
    import llama_cpp.llama_cpp as llama_c

    model_params, context_params = llama_c.llama_model_default_params, llama_c.llama_context_default_params

    def model() -> Any:
        value = model_params()
        if not extra_buffer_types:
            value.use_extra_bufts = False
        return value

    def context() -> Any:
        value = context_params()
        value.n_seq_max = n_seq_max
        value.kv_unified = True
        return value

    llama_c.llama_model_default_params, llama_c.llama_context_default_params = model, context
    try:
        yield
    finally:
        llama_c.llama_model_default_params, llama_c.llama_context_default_params = model_params, context_params


_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class LoadSettings:
    """How to load a model: context size per sequence, GPU layers, CPU threads, batch width."""

    n_ctx: int = DEFAULT_N_CTX
    n_gpu_layers: int | None = None  # None: every layer when llama.cpp was built with GPU support
    n_threads: int = 0  # 0: DEFAULT_THREADS (see threads())
    n_threads_batch: int = 0  # prefill; 0: DEFAULT_THREADS_BATCH
    n_seq_max: int = DEFAULT_N_SEQ_MAX

    def context_cells(self, n_ctx: int) -> int:
        """KV cells for one ``n_ctx`` sequence plus a reply's worth for each other one."""
        return n_ctx + (max(self.n_seq_max, 1) - 1) * SEQ_RESERVE_TOKENS

    @classmethod
    def from_config(cls, config: LocalConfig) -> LoadSettings:
        """The settings that ``[local]`` in fusion.toml asks for."""
        return cls(
            n_ctx=config.n_ctx or DEFAULT_N_CTX,
            n_gpu_layers=config.n_gpu_layers,
            n_threads=config.n_threads or 0,
            n_threads_batch=config.n_threads_batch or 0,
            n_seq_max=max(1, min(config.n_seq_max or DEFAULT_N_SEQ_MAX, MAX_SEQ_MAX)),
        )

    def threads(self, cores: int) -> tuple[int, int]:
        """``(n_threads, n_threads_batch)``: the configured counts, or the defaults for ``cores``."""
        decode, prefill = default_threads(cores)
        return self.n_threads or decode, self.n_threads_batch or prefill


class LocalModel:
    """One GGUF file loaded at most once, with the lock and thread every use goes through."""

    def __init__(
        self,
        path: Path,
        settings: LoadSettings | None = None,
        *,
        embedded_cache_dir: str | None = None,
        embedded: bool = False,
        memory_probe: Callable[[], int | None] = available_memory_bytes,
    ) -> None:
        self.path = path
        self.settings = settings or LoadSettings()
        self.lock = threading.Lock()
        self.load_count = 0
        self.metadata: dict[str, Any] = {}
        self.bos_text = ""
        self.eos_text = ""
        # The context one sequence may use (n_ctx, capped at the trained length); the
        # loaded context holds more cells, for the other sequences of a batch.
        self.n_ctx = self.settings.n_ctx
        self._embedded = embedded
        self._cache_dir = embedded_cache_dir
        self._memory_probe = memory_probe
        self._llama: llama_cpp.Llama | None = None
        self._load_lock = threading.Lock()
        self._holders = 0  # open Fusion sessions using this model (see hold/release)
        # One thread per model: the context is single-threaded anyway, and waiting members
        # then queue here instead of filling the event loop's default executor.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusion-llama")

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    @property
    def llama(self) -> llama_cpp.Llama:
        """The loaded ``llama_cpp.Llama`` (hold :attr:`lock` while using it)."""
        if self._llama is None:
            raise ModelLoadError(f"{self.path} is not loaded yet", backend=BACKEND_NAME, model=str(self.path))
        return self._llama

    def submit(self, func: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``func`` on this model's worker thread (cancel the future to unqueue it)."""
        return asyncio.get_running_loop().run_in_executor(self._executor, func)

    async def run(self, func: Callable[[], T]) -> T:
        """Run ``func`` on this model's worker thread and wait for it."""
        return await self.submit(func)

    def load(self) -> llama_cpp.Llama:
        """Load the weights (once; later calls return the same object). Blocking."""
        with self._load_lock:
            if self._llama is None:
                llm = self._open()
                self.bos_text = _token_text(llm, llm.token_bos())
                self.eos_text = _token_text(llm, llm.token_eos())
                self._llama = llm
                self.load_count += 1
            return self._llama

    def hold(self) -> None:
        """A session uses this model: it stays loaded until every holder released it."""
        with self._load_lock:
            self._holders += 1

    def release(self) -> None:
        """A session is closed; the last holder frees the weights (a later use loads them again)."""
        with self._load_lock:
            self._holders = max(0, self._holders - 1)
            if self._holders or self._llama is None:
                return
            with self.lock:  # not while a reply or a score is being computed
                llm, self._llama = self._llama, None
        llm.close()

    def _error(self, message: str, hint: str) -> ModelLoadError:
        return ModelLoadError(message, backend=BACKEND_NAME, model=str(self.path), hint=hint)

    def _open(self) -> llama_cpp.Llama:
        try:
            import llama_cpp
            import llama_cpp.llama_cpp as llama_c
        except ImportError as exc:
            raise self._error(f"llama-cpp-python is not installed ({exc})", INSTALL_HINT) from exc
        if self._embedded and not embedded_model_ready(self._cache_dir):
            prepare_embedded_model(self._cache_dir)
        path = self.path
        if not path.is_file():
            raise self._error(
                f"model file not found: {path}",
                "Check the path, or download the GGUF first and point gguf:/path or [local.models] at it.",
            )
        if not os.access(path, os.R_OK):
            raise self._error(f"cannot read {path}: permission denied", "Fix the file's permissions (chmod a+r).")
        self.metadata = read_gguf_metadata(path)
        arch = str(self.metadata.get("general.architecture") or "")
        trained_ctx = self.metadata.get(arch + CONTEXT_KEY_SUFFIX)
        n_ctx = self.settings.n_ctx
        if isinstance(trained_ctx, int) and trained_ctx > 0:
            n_ctx = min(n_ctx, trained_ctx)
        self.n_ctx = n_ctx
        cells = self.settings.context_cells(n_ctx)
        gpu_build = bool(llama_c.llama_supports_gpu_offload())
        gpu_layers = gpu_layers_for(self.settings.n_gpu_layers, gpu_build)
        if not (gpu_layers and gpu_build):  # weights in RAM: they must fit
            estimate = estimate_memory(path.stat().st_size, cells, self.metadata)
            check_memory_fits(estimate, self._memory_probe(), model=str(path))
        threads, threads_batch = self.settings.threads(cores())
        with _OPEN_LOCK, _patched_params(n_seq_max=self.settings.n_seq_max, extra_buffer_types=not cpu_has_amx()):
            _install_quiet_log()
            _llama_log_tail.clear()
            try:
                return llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=cells,
                    n_batch=min(DEFAULT_N_BATCH, n_ctx),
                    n_threads=threads,
                    n_threads_batch=threads_batch,
                    n_gpu_layers=gpu_layers,
                    logits_all=False,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                detail = next((line for line in reversed(_llama_log_tail) if "error" in line.lower()), str(exc))
                raise self._error(
                    f"llama.cpp could not load {path}: {detail}",
                    "Check that the file is a complete GGUF download and that this "
                    "llama-cpp-python supports its architecture "
                    "(pip install -U llama-cpp-python).",
                ) from exc


def _token_text(llm: llama_cpp.Llama, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="replace")
