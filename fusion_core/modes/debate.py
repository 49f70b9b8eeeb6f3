"""debate: models revise their answers after reading each other's, then the judge merges.

Round 1 is the independent answers; each later round shows every model the
others' latest answers (anonymised, as untrusted data) and asks it to revise.
The debate stops early once no model changes its answer meaningfully, or
when fewer than two members still have an answer to debate. The engine runs
the rounds; this module decides who revises, with what prompt, and when to stop.

Members never see the judge's framing: each revision prompt has its own fresh
nonce and calls the other answers "expert 1", "expert 2" ..., not the judge's
labels, so a member cannot work out which label the judge will know it by, nor
copy the judge's nonce into its answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher

from fusion_core.backends.base import Message
from fusion_core.framing import DATA_NOTICE, block, new_nonce
from fusion_core.modes.merge import Merge

DEFAULT_ROUNDS = 2
# A revision at least this similar to the previous answer counts as "unchanged".
CONVERGENCE_SIMILARITY = 0.9


class Debate(Merge):
    name = "debate"
    revises = True

    def rounds(self, requested: int) -> int:
        """The rounds asked for, the independent answers included."""
        return requested

    def revise(
        self, *, question: str, answers: Mapping[str, str], round_number: int, system: str | None = None
    ) -> dict[str, tuple[Message, ...]]:
        """Every member with an answer revises it after reading the others'; with fewer than two, stop."""
        if len(answers) < 2:
            return {}
        return {
            model: self.revision_messages(
                question=question,
                own_answer=own,
                others=[text for other, text in answers.items() if other != model],
                round_number=round_number,
                system=system,
            )
            for model, own in answers.items()
        }

    def settled(self, previous: Mapping[str, str], current: Mapping[str, str]) -> bool:
        """True when every member that answered this round kept its previous answer, near enough."""
        return converged([previous[model] for model in current], list(current.values()))

    def revision_messages(
        self,
        *,
        question: str,
        own_answer: str,
        others: Sequence[str],
        round_number: int,
        system: str | None = None,
    ) -> tuple[Message, ...]:
        """The prompt for one member's revision in ``round_number`` (2 or later); ``others``
        are the other members' latest answers."""
        nonce = new_nonce()  # this prompt's own; never the judge's
        parts = [
            DATA_NOTICE.format(nonce=nonce),
            block("question", "Q", question, nonce),
            "Your previous answer:",
            block("answer", "yours", own_answer, nonce),
            f"Answers from {len(others)} other experts:",
            *(block("answer", f"expert {n}", text, nonce) for n, text in enumerate(others, start=1)),
            f"This is revision round {round_number}. Critique the other answers briefly in your "
            "head, fix any mistakes in yours, adopt what they got right, and keep what you are "
            "sure of. Reply with your complete revised answer to the question only.",
        ]
        messages: list[Message] = []
        if system:
            messages.append(Message("system", system))
        messages.append(Message("user", "\n\n".join(parts)))
        return tuple(messages)


def converged(previous: Sequence[str], current: Sequence[str]) -> bool:
    """True when no member's answer changed meaningfully between two rounds."""
    if len(previous) != len(current) or not current:
        return False
    return all(
        SequenceMatcher(None, old, new).ratio() >= CONVERGENCE_SIMILARITY
        for old, new in zip(previous, current, strict=True)
    )
