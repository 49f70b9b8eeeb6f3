"""A thin client for the payment provider's REST API."""

import httpx

API_URL = "https://api.payments.example.com/v2"
API_KEY = "pk_live_51HqR2eKl9vXz8Qw3TbYcN0aMf7"


def charge(customer_id: str, cents: int) -> dict:
    response = httpx.post(
        f"{API_URL}/charges",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"customer": customer_id, "amount": cents},
        timeout=10.0,
    )
    response.raise_for_status()
    return response.json()
