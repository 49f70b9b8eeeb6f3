"""CodeT-style test inputs: ask a model for more calls of the prompt's function, for behavioural consensus.

CodeT (Chen et al. 2022) has a model write tests and ranks candidates by how
they agree on them. Here only the *inputs* of the proposed calls are used: the
expected values a small model writes are too often wrong to grade by, but its
inputs still separate candidates that behave differently. The model's reply is
untrusted text: it is only parsed (:mod:`fusion_core.judges.visible_tests`),
each argument must be a Python literal, and the count is bounded.
"""

from __future__ import annotations

import ast

from fusion_core.backends.base import Backend, ChatRequest, Message, complete
from fusion_core.judges.visible_tests import MAX_PROMPT_CHARS, extract_visible_tests

__all__ = ["MAX_PROPOSED_INPUTS", "propose_inputs", "proposal_prompt"]

MAX_PROPOSED_INPUTS = 8
PROPOSAL_MAX_TOKENS = 128
PROPOSAL_TEMPERATURE = 0.7
PROPOSAL_SEED = 7


def proposal_prompt(prompt: str, function: str) -> str:
    """The prompt with a stub body, then the start of a test block a base model continues."""
    head = prompt[:MAX_PROMPT_CHARS].rstrip("\n")
    return f"{head}\n    ...\n\n\ndef test_{function}():\n    assert {function}("


async def propose_inputs(backend: Backend, model: str, prompt: str, function: str) -> list[str]:
    """Up to MAX_PROPOSED_INPUTS argument lists (as source) the model proposes for ``function``."""
    request = ChatRequest(
        model=model,
        messages=(Message("user", proposal_prompt(prompt, function)),),
        temperature=PROPOSAL_TEMPERATURE,
        max_tokens=PROPOSAL_MAX_TOKENS,
        seed=PROPOSAL_SEED,
        stop=("\ndef ", "\n\n\n"),
    )
    reply = await complete(backend, request)
    text = f"def {function}():\n    pass\n\nassert {function}(" + reply.text
    out: list[str] = []
    for test in extract_visible_tests(text, function):
        args = test.args
        if args is not None and args not in out and _literal_args(args):
            out.append(args)
    return out[:MAX_PROPOSED_INPUTS]


def _literal_args(args: str) -> bool:
    """Whether every argument is a literal (a proposed call may name variables that do not exist)."""
    try:
        tree = ast.parse(f"f({args})", mode="eval")
        call = tree.body
        if not isinstance(call, ast.Call) or call.keywords:
            return False
        for arg in call.args:
            ast.literal_eval(arg)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True
