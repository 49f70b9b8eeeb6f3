"""Word statistics for the editor's status bar."""

import re
from collections import Counter

WORD = re.compile(r"[A-Za-z']+")


def word_count(text: str) -> int:
    return len(WORD.findall(text))


def top_words(text: str, n: int = 5) -> list[tuple[str, int]]:
    counts = Counter(word.lower() for word in WORD.findall(text))
    return counts.most_common(n)


def reading_time_minutes(text: str, words_per_minute: int = 200) -> int:
    words = word_count(text)
    return max(1, -(-words // words_per_minute))
