"""Model providers: OpenAI-compatible HTTP (OpenRouter preset), in-process llama.cpp, scripted.

The protocol and its optional abilities are in :mod:`fusion_core.backends.base`; how a
spec finds its provider (the ``fusion.backends`` entry points) is in
:mod:`fusion_core.backends.registry`.
"""

from __future__ import annotations

from fusion_core.backends.base import (
    Backend,
    ChatRequest,
    Chunk,
    Closable,
    Completion,
    InstructAware,
    Message,
    ModelCatalog,
    ModelInfo,
    Preloadable,
    Reply,
    Scorer,
    complete,
    consume,
)
from fusion_core.backends.registry import Provider, ProviderContext

__all__ = [
    "Backend",
    "ChatRequest",
    "Chunk",
    "Closable",
    "Completion",
    "InstructAware",
    "Message",
    "ModelCatalog",
    "ModelInfo",
    "Preloadable",
    "Provider",
    "ProviderContext",
    "Reply",
    "Scorer",
    "complete",
    "consume",
]
