"""Count page hits from many worker threads."""

import threading


class HitCounter:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def record(self, page: str) -> None:
        current = self.hits.get(page, 0)
        self.hits[page] = current + 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.hits)


def hammer(counter: HitCounter, page: str, times: int) -> None:
    threads = [threading.Thread(target=counter.record, args=(page,)) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
