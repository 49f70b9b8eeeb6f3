"""The likelihood judge's numbers: each candidate's mean log-probability under a local model.

Candidates are scored together in one multi-sequence decode, the way a ``SPEC*N`` pool
samples (:mod:`fusion_core.backends.llama.batch`): the prompt is prefilled once into
sequence 0 and its KV cells are shared with one sequence per candidate
(``llama_memory_seq_cp``); then every candidate's tokens go through ``llama_decode``
together, each asking for its logits row.

A logits row is as wide as the vocabulary, 262,144 floats (1 MiB) for Gemma 3, and
llama.cpp keeps an output buffer as large as the most rows one decode asked for. So a
decode asks for at most :data:`SCORE_ROWS` rows, and each row is reduced to the one
log-probability it is for before the next decode: memory stays flat whatever the number
and length of the candidates.

Batched logits are not bit-identical to one sequence's: a batched score differs from the
same candidate scored alone by a few hundredths of a nat per token (see the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fusion_core.backends.llama.batch import common_prefix
from fusion_core.backends.llama.memory import BACKEND_NAME
from fusion_core.errors import BadRequest

if TYPE_CHECKING:
    import llama_cpp
    import numpy as np
    import numpy.typing as npt

__all__ = ["SCORE_ROWS", "mean_logprobs", "refresh_last_logits"]

# Logits rows one decode may ask for: 32 MiB of output buffer at a 262,144-token vocabulary.
# Measured on 2 cores: 32, 64, 128 and 512 rows per decode scored 5 candidates in about the
# same time, and peak RSS rose from 0.58 GB (32) to 0.76, 1.0 and 1.7 GB.
SCORE_ROWS = 32

# One scored position: (sequence, position, token fed, token whose log-probability is wanted).
_Item = tuple[int, int, int, int]


def mean_logprobs(
    llm: llama_cpp.Llama, context: list[int], conts: Sequence[list[int]], *, max_seqs: int
) -> list[float]:
    """Mean over i of log p(cont[i] | context + cont[:i]) for every non-empty ``cont``.

    Up to ``max_seqs`` candidates (and as many as the context's cells hold) decode
    together; ``max_seqs=1`` scores them one after another. Hold the model's lock.
    """
    import llama_cpp.llama_cpp as llama_c

    for cont in conts:
        if len(context) + len(cont) > llm.n_ctx():
            raise BadRequest(
                f"prompt + candidate is {len(context) + len(cont)} tokens; the context holds {llm.n_ctx()}",
                backend=BACKEND_NAME,
                hint="Raise [local] n_ctx in fusion.toml.",
            )
    prefix = context[:-1]
    # Llama.eval drops every sequence's cells past n_tokens, so truncating n_tokens to the
    # shared prefix is how a cached prompt is kept and earlier candidates thrown away.
    llm.n_tokens = common_prefix(llm.input_ids[: llm.n_tokens].tolist(), prefix)
    llm.eval(prefix[llm.n_tokens :])
    memory = llama_c.llama_get_memory(llm.ctx)
    sums = [0.0] * len(conts)
    try:
        for group in _groups(conts, len(prefix), llm.n_ctx(), max(1, max_seqs)):
            for seq in range(1, len(group)):
                llama_c.llama_memory_seq_rm(memory, seq, -1, -1)
                llama_c.llama_memory_seq_cp(memory, 0, seq, -1, -1)
            items = [
                (seq, len(prefix) + i, token, target)
                for seq, index in enumerate(group)
                for i, (token, target) in enumerate(zip(context[-1:] + conts[index][:-1], conts[index], strict=True))
            ]
            step = min(SCORE_ROWS, llm.n_batch)
            for begin in range(0, len(items), step):
                part = items[begin : begin + step]
                for (seq, _, _, _), logprob in zip(part, _decode_logprobs(llm, part), strict=True):
                    sums[group[seq]] += float(logprob)
            for seq in range(1, len(group)):
                llama_c.llama_memory_seq_rm(memory, seq, -1, -1)
            _forget_candidate(llm, memory, len(prefix))
    finally:
        for seq in range(1, max(1, max_seqs)):
            llama_c.llama_memory_seq_rm(memory, seq, -1, -1)
        _forget_candidate(llm, memory, len(prefix))
    return [total / len(cont) for total, cont in zip(sums, conts, strict=True)]


def _groups(conts: Sequence[list[int]], prefix: int, cells: int, max_seqs: int) -> list[list[int]]:
    """Candidate indices in batches of at most ``max_seqs`` whose tokens fit the cells left."""
    groups: list[list[int]] = []
    used = prefix
    for index, cont in enumerate(conts):
        if not groups or len(groups[-1]) >= max_seqs or used + len(cont) > cells:
            groups.append([])
            used = prefix
        groups[-1].append(index)
        used += len(cont)
    return groups


def _decode_logprobs(llm: llama_cpp.Llama, part: Sequence[_Item]) -> npt.NDArray[np.float32]:
    """Decode ``part`` (every item asking for logits) and reduce each row to its target's log-probability."""
    import llama_cpp.llama_cpp as llama_c
    import numpy as np

    batch = llama_c.llama_batch_init(len(part), 0, 1)
    try:
        batch.n_tokens = len(part)
        for i, (seq, pos, token, _) in enumerate(part):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = True
        if llama_c.llama_decode(llm.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed while scoring")
    finally:
        llama_c.llama_batch_free(batch)
    n_vocab = llm.n_vocab()
    rows = np.ctypeslib.as_array(llama_c.llama_get_logits(llm.ctx), shape=(len(part) * n_vocab,)).reshape(
        len(part), n_vocab
    )
    # float32 throughout: a float64 copy of 262k-wide rows costs 10x the softmax itself.
    top = rows.max(axis=1)
    shifted = rows - top[:, None]
    np.exp(shifted, out=shifted)  # in place: one temporary copy of the rows, not two
    log_norm = top + np.log(shifted.sum(axis=1))
    targets = np.fromiter((target for _, _, _, target in part), dtype=np.intp, count=len(part))
    result: npt.NDArray[np.float32] = rows[np.arange(len(part)), targets] - log_norm
    return result


def _forget_candidate(llm: llama_cpp.Llama, memory: llama_cpp.llama_memory_t, prefix: int) -> None:
    # Sequence 0 keeps the shared prefix cached for the next candidate or request.
    import llama_cpp.llama_cpp as llama_c

    llm.n_tokens = min(llm.n_tokens, prefix)
    if not llama_c.llama_memory_seq_rm(memory, 0, llm.n_tokens, -1):  # a partial removal can fail: start clean
        llama_c.llama_memory_clear(memory, True)
        llm.n_tokens = 0


def refresh_last_logits(llm: llama_cpp.Llama) -> None:
    """Re-decode the last cached token: scoring overwrote the context's last logits."""
    # Llama.generate samples straight from them when its prompt is exactly the cached tokens.
    if llm.n_tokens > 0:
        last = int(llm.input_ids[llm.n_tokens - 1])
        llm.n_tokens -= 1
        llm.eval([last])
