"""Call the internal inventory service."""

import requests

BASE_URL = "https://inventory.internal.example.com"


def stock_level(sku: str) -> int:
    response = requests.get(f"{BASE_URL}/stock/{sku}", verify=False, timeout=5)
    response.raise_for_status()
    return int(response.json()["level"])
