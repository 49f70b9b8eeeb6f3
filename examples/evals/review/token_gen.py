"""Password-reset tokens."""

import random
import string
import time

ALPHABET = string.ascii_letters + string.digits
TOKEN_TTL_S = 3600


def reset_token(length: int = 32) -> str:
    return "".join(random.choice(ALPHABET) for _ in range(length))


def expired(issued_at: float) -> bool:
    return time.time() - issued_at > TOKEN_TTL_S
