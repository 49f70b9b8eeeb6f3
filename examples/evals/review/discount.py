"""Apply discount codes at checkout."""

CODES = {"WELCOME10": 10, "VIP25": 25}


def apply_discount(total_cents: int, code: str) -> int:
    percent = CODES.get(code.upper(), 0)
    return total_cents - total_cents * (100 - percent) // 100


def format_price(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"
