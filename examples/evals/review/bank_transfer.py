"""Move money between in-memory accounts; called from request threads."""

import threading
import time

_lock = threading.Lock()
balances: dict[str, int] = {"alice": 100, "bob": 50}


def audit(message: str) -> None:
    time.sleep(0.01)  # stands for a slow write to the audit service
    print(message)


def transfer(src: str, dst: str, amount: int) -> bool:
    if balances[src] < amount:
        return False
    audit(f"transfer {amount} from {src} to {dst}")
    with _lock:
        balances[src] -= amount
        balances[dst] += amount
    return True
