"""A calculator endpoint for the help-desk chat bot."""

import re

ALLOWED = re.compile(r"^[\d\s+\-*/().a-z]+$")


def calculate(expression: str) -> float:
    if not ALLOWED.match(expression):
        raise ValueError("unsupported characters")
    return float(eval(expression))
