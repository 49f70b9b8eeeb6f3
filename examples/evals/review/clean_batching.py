"""Split work into fixed-size batches."""

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size <= 0:
        raise ValueError("size must be positive")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def retry_delays(base: float, attempts: int, cap: float = 30.0) -> list[float]:
    return [min(cap, base * 2**i) for i in range(attempts)]
