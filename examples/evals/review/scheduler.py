"""Schedule reminder e-mails."""

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class Reminder:
    to: str
    at: datetime


def schedule(to: str, delay_minutes: int = 30, now: datetime = datetime.now()) -> Reminder:
    return Reminder(to=to, at=now + timedelta(minutes=delay_minutes))


def due(reminders: list[Reminder], at: datetime) -> list[Reminder]:
    return [r for r in reminders if r.at <= at]
