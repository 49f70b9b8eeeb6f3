"""Token and cost accounting for one call, one model, or a whole run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pricing:
    """USD per token, as OpenRouter's /models lists it (strings there, floats here)."""

    prompt: float = 0.0
    completion: float = 0.0
    request: float = 0.0

    @classmethod
    def from_openrouter(cls, data: dict[str, Any]) -> Pricing:
        """Read a /models ``pricing`` object, whose fields are decimal strings."""

        def num(key: str) -> float:
            try:
                return float(data.get(key) or 0)
            except (TypeError, ValueError):
                return 0.0

        return cls(prompt=num("prompt"), completion=num("completion"), request=num("request"))

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one request of this size."""
        return self.request + prompt_tokens * self.prompt + completion_tokens * self.completion


@dataclass(frozen=True)
class Usage:
    """What a call consumed; ``cost`` is USD, None when unknown."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    cost_estimated: bool = False
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # Local models cost nothing in money; they cost CPU or GPU time instead.
    compute_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        if self.cost is None and other.cost is None:
            cost = None
        else:
            cost = (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=cost,
            cost_estimated=self.cost_estimated or other.cost_estimated,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            compute_s=self.compute_s + other.compute_s,
        )

    def with_estimated_cost(self, pricing: Pricing | None) -> Usage:
        """Fill a missing provider cost from list prices, marked as estimated."""
        if self.cost is not None or pricing is None or not self.total_tokens:
            return self
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=pricing.cost(self.prompt_tokens, self.completion_tokens),
            cost_estimated=True,
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
            compute_s=self.compute_s,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        data: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
        }
        if self.cost_estimated:
            data["cost_estimated"] = True
        if self.cached_tokens:
            data["cached_tokens"] = self.cached_tokens
        if self.reasoning_tokens:
            data["reasoning_tokens"] = self.reasoning_tokens
        if self.compute_s:
            data["compute_s"] = round(self.compute_s, 4)
        return data

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> Usage:
        """Read an OpenAI/OpenRouter ``usage`` object."""
        prompt_details = data.get("prompt_tokens_details") or {}
        completion_details = data.get("completion_tokens_details") or {}
        cost = data.get("cost")
        return cls(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            cost=float(cost) if isinstance(cost, int | float) else None,
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )
