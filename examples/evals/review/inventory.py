"""Build per-warehouse restock callbacks."""

from collections.abc import Callable


def restock_callbacks(warehouses: list[str], notify: Callable[[str], None]) -> list[Callable[[], None]]:
    callbacks = []
    for name in warehouses:
        callbacks.append(lambda: notify(name))
    return callbacks


def run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()
