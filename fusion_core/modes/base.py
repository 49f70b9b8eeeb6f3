"""What every fusion mode provides: judge instructions, a schema, a verdict reader, and its rounds.

Modes build prompts and read verdicts; none of them touches HTTP. A mode may
also have the members revise their answers in further rounds (debate): the
engine runs whatever rounds :meth:`Mode.revise` asks for, until the mode says
the answers have settled. Single-round modes inherit :class:`SingleRound`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fusion_core.backends.base import Message
from fusion_core.verdicts import JudgeVerdict


class VerdictFormatError(ValueError):
    """The judge's JSON does not follow the schema; the message says how."""


@dataclass(frozen=True)
class Verdict:
    """A judge decision with labels already mapped back to model names."""

    answer: str
    rationale: str
    details: JudgeVerdict


class Mode(Protocol):
    name: str
    schema_name: str
    instructions: str
    # True when members revise their answers in rounds; the result then keeps every round.
    revises: bool

    def rounds(self, requested: int) -> int:
        """How many rounds of member answers at most, when the user asked for ``requested``."""
        ...

    def revise(
        self, *, question: str, answers: Mapping[str, str], round_number: int, system: str | None = None
    ) -> dict[str, tuple[Message, ...]]:
        """Round ``round_number``'s prompt for each member that revises, given each member's latest
        successful answer (model name to text); an empty dict ends the rounds."""
        ...

    def settled(self, previous: Mapping[str, str], current: Mapping[str, str]) -> bool:
        """True when the round just run changed nothing meaningful, so no further round is needed."""
        ...

    def schema(self, labels: list[str]) -> dict[str, Any]:
        """The JSON schema of a verdict for a run with these labels."""
        ...

    def read(self, data: dict[str, Any], texts: Mapping[str, str], models: Mapping[str, str]) -> Verdict:
        """Check the judge's JSON and build the verdict; raises VerdictFormatError."""
        ...


class SingleRound:
    """The rounds of a mode where every member answers once (best-of, merge)."""

    revises = False

    def rounds(self, requested: int) -> int:
        """Always one: the members answer independently and the judge takes it from there."""
        return 1

    def revise(
        self, *, question: str, answers: Mapping[str, str], round_number: int, system: str | None = None
    ) -> dict[str, tuple[Message, ...]]:
        """No revisions."""
        return {}

    def settled(self, previous: Mapping[str, str], current: Mapping[str, str]) -> bool:
        """Nothing to settle after one round."""
        return True


def require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``data[key]`` if present and of ``kind``, else a VerdictFormatError naming it."""
    if key not in data:
        raise VerdictFormatError(f"the field {key!r} is missing")
    value = data[key]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise VerdictFormatError(f"the field {key!r} must be a number")
    if not isinstance(value, kind):
        raise VerdictFormatError(f"the field {key!r} has the wrong type")
    return value


def label_of(value: Any, models: Mapping[str, str], field_name: str) -> str:
    """A label the judge wrote, checked against this run's labels."""
    label = str(value).strip()
    if label.lower().startswith("candidate "):
        label = label[len("candidate ") :].strip()
    if label not in models:
        raise VerdictFormatError(f"{field_name} is {value!r}, which is not one of the labels {', '.join(models)}")
    return label
