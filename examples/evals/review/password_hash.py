"""Store and check user passwords."""

import hashlib
import hmac


def hash_password(password: str, salt: bytes) -> str:
    return hashlib.md5(salt + password.encode()).hexdigest()


def check_password(password: str, salt: bytes, stored: str) -> bool:
    return hmac.compare_digest(hash_password(password, salt), stored)
