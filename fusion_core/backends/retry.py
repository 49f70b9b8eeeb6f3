"""When and how long to wait before retrying a failed HTTP call.

Follows openai-python's table: 408/409/429/5xx are retried with exponential
backoff, honouring ``Retry-After``; 400/401/402/403 never are (402 only when
the server says when to come back).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_RETRIES = 2
BASE_DELAY_S = 0.5
MAX_DELAY_S = 8.0
# A server asking us to wait longer than this is treated as a final answer:
# a user waiting on a fused answer is better served by the other models.
MAX_RETRY_AFTER_S = 30.0

Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            current = time.time() if now is None else now
            seconds = when.timestamp() - current
        except (TypeError, ValueError, OverflowError):
            return None
    # "nan" and "inf" parse as floats; neither is a time to wait.
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = MAX_RETRIES
    base_delay_s: float = BASE_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    sleep: Sleep = field(default=asyncio.sleep, compare=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based), or None to give up."""
        if attempt > self.max_retries:
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.max_retry_after_s else None
        backoff = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return float(backoff * (0.75 + 0.5 * self.jitter()))
