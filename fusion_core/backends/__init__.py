"""Model providers: OpenAI-compatible HTTP (OpenRouter preset), in-process llama.cpp, scripted."""

from __future__ import annotations

from fusion_core.backends.base import (
    Backend,
    ChatRequest,
    Chunk,
    Completion,
    Message,
    ModelCatalog,
    ModelInfo,
    complete,
)

__all__ = [
    "Backend",
    "ChatRequest",
    "Chunk",
    "Completion",
    "Message",
    "ModelCatalog",
    "ModelInfo",
    "complete",
]
