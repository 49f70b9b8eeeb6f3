"""Chat messages → one llama.cpp prompt, for instruction-tuned and base (pretrained) models.

An instruction-tuned GGUF carries its chat template in the header
(``tokenizer.chat_template``); Gemma IT models without one get Gemma's turn
format. A base model such as the embedded Gemma 3 270M has never seen a chat
turn, so the conversation becomes a document it can continue:

* a single message that reads as text or code to continue (``def fib(n):``,
  ``The capital of France is``) is the prompt itself, and the reply is its
  continuation, stopped where a new top-level block begins;
* anything else is framed as ``Question: ...`` / ``Answer:`` and stopped at a
  blank line or the next ``Question:``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fusion_core.backends.base import Message

__all__ = [
    "PromptPlan",
    "StopScanner",
    "build_prompt",
    "detect_instruct",
    "format_base_prompt",
    "format_gemma_chat",
    "reads_as_continuation",
    "render_chat_template",
]

CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
GEMMA_END_OF_TURN = "<end_of_turn>"
QUESTION_PREFIX = "Question: "
ANSWER_PREFIX = "Answer:"
# A base model's answer ends at a blank line or when it starts inventing the next question.
QA_STOPS = ("\n\n", "\nQuestion:")
# HumanEval-style: a continued function ends where a new top-level statement begins.
CODE_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```", "\n\n\n")
TEXT_STOPS = ("\n\n",)

_INSTRUCT_TAGS = re.compile(r"(^|[\s_.\-])(it|instruct|chat|sft|rlhf|dpo)($|[\s_.\-])", re.I)
_BASE_TAGS = re.compile(r"(^|[\s_.\-])(pt|base|pretrained)($|[\s_.\-])", re.I)
_CODE_START = re.compile(
    r"^(def|class|import|from|async\s+def|@\w|#!|#include|function|const|let|var|public|"
    r"private|fn|func|package|struct|impl|SELECT|CREATE|for|while|if|return|<\?php|<html)\b",
)
_CODE_END_CHARS = (":", "{", "(", "[", ",", "=", "\\", "->", "=>")
_INSTRUCTION_WORDS = frozenset(
    "what how why when where who whom whose which is are was were can could should would will "
    "do does did explain write describe give list summarize summarise tell please translate fix "
    "implement create generate compare review suggest find make rewrite refactor name define "
    "show convert calculate compute solve answer help".split()
)


@dataclass(frozen=True)
class PromptPlan:
    """The text to tokenize, where to stop, and how to tokenize it."""

    text: str
    stop: tuple[str, ...] = ()
    # Chat templates write special tokens (<start_of_turn>) as text; user documents must not.
    special: bool = False
    # Whether the tokenizer should prepend BOS (false when the template already wrote it).
    add_bos: bool = True
    # Drop whitespace before the first word, so a leading "\n\n" does not hit a stop.
    lstrip: bool = False


def detect_instruct(metadata: Mapping[str, Any]) -> bool:
    """Whether a GGUF header describes an instruction-tuned (chat) model."""
    finetune = str(metadata.get("general.finetune") or "")
    if _INSTRUCT_TAGS.search(finetune):
        return True
    if _BASE_TAGS.search(finetune):
        return False
    name = " ".join(str(metadata.get(key) or "") for key in ("general.name", "general.basename"))
    if _INSTRUCT_TAGS.search(name):
        return True
    if _BASE_TAGS.search(name):
        return False
    return bool(metadata.get(CHAT_TEMPLATE_KEY))


def is_gemma(metadata: Mapping[str, Any]) -> bool:
    """Whether the header is a Gemma family model (which has its own turn format)."""
    arch = str(metadata.get("general.architecture") or "")
    name = str(metadata.get("general.name") or "")
    return arch.startswith("gemma") or "gemma" in name.lower()


def _looks_like_code(text: str) -> bool:
    first_line = text.lstrip().split("\n", 1)[0].strip()
    return bool(_CODE_START.match(first_line)) or text.rstrip().endswith(_CODE_END_CHARS)


def reads_as_continuation(text: str) -> bool:
    """Whether a message is text or code to continue, rather than a question or a task."""
    stripped = text.strip()
    if not stripped or "```" in stripped:
        return False
    if _looks_like_code(stripped):
        return True
    if stripped.endswith("?"):
        return False
    first_word = stripped.split(None, 1)[0].lower().strip(",:;")
    if first_word in _INSTRUCTION_WORDS:
        return False
    # An unfinished sentence ("The capital of France is") asks to be continued.
    return not stripped.endswith((".", "!"))


def format_base_prompt(messages: Sequence[Message]) -> PromptPlan:
    """A completion-style prompt for a base model: the text to continue, or a Q/A document."""
    turns = [m for m in messages if m.role != "system"]
    if len(turns) == 1 and turns[0].role == "user" and reads_as_continuation(turns[0].content):
        # System messages are dropped here: a base model cannot follow them, and
        # prepending them would corrupt the very document it is asked to continue.
        text = turns[0].content
        stops = CODE_STOPS if _looks_like_code(text.strip()) else TEXT_STOPS
        return PromptPlan(text=text, stop=stops)
    parts = [m.content.strip() + "\n\n" for m in messages if m.role == "system"]
    for message in turns:
        if message.role == "user":
            parts.append(f"{QUESTION_PREFIX}{message.content.strip()}\n")
        else:
            parts.append(f"{ANSWER_PREFIX} {message.content.strip()}\n\n")
    parts.append(ANSWER_PREFIX)
    return PromptPlan(text="".join(parts), stop=QA_STOPS, lstrip=True)


def format_gemma_chat(messages: Sequence[Message], *, bos: str = "<bos>") -> PromptPlan:
    """Gemma's turn format; the system prompt is folded into the first user turn, as Gemma's does."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    parts = [bos]
    for message in (m for m in messages if m.role != "system"):
        role = "model" if message.role == "assistant" else "user"
        content = message.content
        if system and role == "user":
            content, system = f"{system}\n\n{content}", ""
        parts.append(f"<start_of_turn>{role}\n{content}{GEMMA_END_OF_TURN}\n")
    if system:  # only a system message was given
        parts.append(f"<start_of_turn>user\n{system}{GEMMA_END_OF_TURN}\n")
    parts.append("<start_of_turn>model\n")
    return PromptPlan(text="".join(parts), stop=(GEMMA_END_OF_TURN,), special=True, add_bos=not bos)


def render_chat_template(template: str, messages: Sequence[Message], *, bos: str, eos: str) -> PromptPlan:
    """Render a GGUF's Jinja chat template (sandboxed, as transformers renders it)."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(template).render(
        messages=[m.to_dict() for m in messages],
        bos_token=bos,
        eos_token=eos,
        add_generation_prompt=True,
        raise_exception=raise_exception,
    )
    stops = tuple(s for s in (eos, GEMMA_END_OF_TURN if GEMMA_END_OF_TURN in template else "") if s)
    return PromptPlan(text=text, stop=stops, special=True, add_bos=not (bos and text.startswith(bos)))


def build_prompt(
    messages: Sequence[Message], *, instruct: bool, metadata: Mapping[str, Any], bos: str = "<bos>", eos: str = "<eos>"
) -> PromptPlan:
    """The prompt for ``messages`` on a model described by ``metadata``."""
    if not instruct:
        return format_base_prompt(messages)
    template = metadata.get(CHAT_TEMPLATE_KEY)
    if isinstance(template, str) and template:
        return render_chat_template(template, messages, bos=bos, eos=eos)
    if is_gemma(metadata):
        return format_gemma_chat(messages, bos=bos)
    # An instruction model without a template: a plain Q/A document still works.
    return format_base_prompt(messages)


class StopScanner:
    """Streams text through, holding back what might be the start of a stop sequence."""

    def __init__(self, stops: Sequence[str], *, lstrip: bool = False) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self._lstrip = lstrip
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add generated text; return what is safe to emit (``stopped`` turns True on a stop)."""
        if self.stopped:
            return ""
        if self._lstrip:
            text = text.lstrip()
            if not text:
                return ""
            self._lstrip = False
        self._pending += text
        hits = [i for i in (self._pending.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self._pending = self._pending[: min(hits)], ""
            return out
        keep = self._held_back()
        out = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep :]
        return out

    def flush(self) -> str:
        """The held-back text once generation has ended without a stop."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out

    def _held_back(self) -> int:
        # The longest tail of pending text that is a proper prefix of some stop sequence.
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:size]):
                    longest = size
                    break
        return longest
