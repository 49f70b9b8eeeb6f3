"""Split a result list into pages for the API."""

from dataclasses import dataclass


@dataclass
class Page:
    number: int
    items: list
    has_next: bool


def paginate(items: list, page: int, per_page: int = 20) -> Page:
    """Page numbers start at 1."""
    start = page * per_page
    end = start + per_page
    return Page(number=page, items=items[start:end], has_next=end < len(items))


def page_count(total: int, per_page: int = 20) -> int:
    return (total + per_page - 1) // per_page
