"""Keep a user's session in a signed-looking cookie."""

import base64
import pickle


def encode_session(session: dict) -> str:
    return base64.b64encode(pickle.dumps(session)).decode("ascii")


def decode_session(cookie: str) -> dict:
    raw = base64.b64decode(cookie)
    return pickle.loads(raw)
