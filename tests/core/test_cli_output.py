"""What `fusion run` shows a person: the answer alone on stdout, the verdict on stderr.

Every test runs the real ``fusion`` entry point in a subprocess against the loopback
test server; the streaming tests give it a real pseudo-terminal.
"""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import select
import subprocess
import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fusion_core.display import AnswerSoFar
from fusion_core.testing.server import TestServer
from tests.fuzzing import fuzz

FUSION = [sys.executable, "-m", "fusion_core"]
# Wide enough that no line of the summary wraps, whatever rich's default for pipes.
WIDE = "400"
# Only a safety net against a hung child: no assertion depends on it.
PTY_GUARD_S = 60.0
ANSI_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
JUDGE_MAX_TOKENS = 4096  # fusion_core.judge.DEFAULT_JUDGE_MAX_TOKENS


def fusion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FUSION, *args], env=dict(env, COLUMNS=WIDE), capture_output=True, text=True, timeout=120)


def run_json(env: dict[str, str], *args: str) -> tuple[dict[str, Any], str]:
    """The result JSON and the human summary that `--json` still writes on stderr."""
    proc = fusion(env, "run", *args, "--json")
    assert proc.returncode in (0, 4), proc.stderr
    return json.loads(proc.stdout), proc.stderr


def verdict_section(summary: str) -> list[str]:
    """The lines between the judge's line and the totals."""
    lines = summary.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("judge "))
    end = next(i for i, line in enumerate(lines) if line.startswith("total "))
    return lines[start + 1 : end]


def test_merge_prints_the_answer_alone_and_the_whole_verdict_on_stderr(remote_env: dict[str, str]) -> None:
    args = ("Why is the sky blue?", "--pool", "mock/alpha,mock/beta,mock/gamma", "--judge", "mock/judge")
    result, summary = run_json(remote_env, *args, "--mode", "merge")
    verdict = result["judge"]["verdict"]
    assert verdict["contradictions"] and verdict["unique_insights"] and verdict["blind_spots"]

    plain = fusion(remote_env, "run", *args, "--mode", "merge")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == result["answer"] + "\n"  # stdout is the answer and nothing else

    lines = [line.strip() for line in summary.splitlines()]
    assert f"confidence {verdict['confidence']:.0%}" in lines
    for item in verdict["consensus"]:
        assert f"consensus: {item}".strip() in lines
    for contradiction in verdict["contradictions"]:
        at = lines.index(f"contradiction: {contradiction['topic']}")
        stances = lines[at + 1 : at + 1 + len(contradiction["stances"])]
        assert stances == [f"{s['model']}: {s['stance']}".strip() for s in contradiction["stances"]]
    for insight in verdict["unique_insights"]:
        assert f"unique insight ({insight['model']}): {insight['insight']}".strip() in lines
    for spot in verdict["blind_spots"]:
        assert f"blind spot: {spot}".strip() in lines
    # Without --json the same verdict is shown (in another order: each run shuffles the labels).
    assert sorted(verdict_section(plain.stderr)) == sorted(verdict_section(summary))
    # The verdict comes after who answered and the judge's rationale, before the totals.
    order = [
        plain.stderr.index(mark) for mark in ("\nanswered (3/3)", "\njudge mock/judge: ", "\n  confidence", "\ntotal ")
    ]
    assert order == sorted(order)


def test_best_of_shows_the_winner_and_every_score(remote_env: dict[str, str]) -> None:
    args = ("Name a colour.", "--pool", "mock/alpha,mock/theta,mock/zeta", "--judge", "mock/judge", "--mode", "best-of")
    result, summary = run_json(remote_env, *args)
    verdict = result["judge"]["verdict"]
    line = next(line.strip() for line in summary.splitlines() if line.strip().startswith("winner "))
    assert line.startswith(f"winner {verdict['winner']}; scores (0-10): ")
    ranked = sorted(verdict["scores"].items(), key=lambda kv: kv[1], reverse=True)
    assert line.endswith(", ".join(f"{model} {score:g}" for model, score in ranked))
    assert ranked[0][0] == verdict["winner"] == "mock/theta"  # the longest answer wins on the mock judge


def test_a_cut_off_candidate_is_marked_truncated(remote_env: dict[str, str]) -> None:
    args = ("Why is the sky blue?", "--pool", "mock/alpha,mock/beta", "--judge", "mock/judge", "--mode", "best-of")
    result, summary = run_json(remote_env, *args, "--max-tokens", "4")
    assert [c["truncated"] for c in result["candidates"]] == [True, True]
    assert {c["finish_reason"] for c in result["candidates"]} == {"length"}
    answered = next(line for line in summary.splitlines() if line.startswith("answered"))
    assert answered == "answered (2/2): mock/alpha [truncated], mock/beta [truncated]"
    assert "the answer is truncated: cut off at max_tokens" in summary

    whole, summary = run_json(remote_env, *args)
    assert [c["truncated"] for c in whole["candidates"]] == [False, False]
    assert "truncated" not in summary


def test_a_judge_cut_off_at_max_tokens_is_recorded_and_shown(server: TestServer, remote_env: dict[str, str]) -> None:
    # A judge that writes its verdict, then keeps talking until max_tokens stops it.
    verdict = {"winner": "A", "scores": {"A": 8, "B": 4}, "rationale": "A is clearer."}
    ramble = " ".join(["and"] * (JUDGE_MAX_TOKENS + 50))
    server.script("mock/rambling-judge", default=json.dumps(verdict) + "\n" + ramble)
    args = ("Pick one.", "--pool", "mock/alpha,mock/beta", "--judge", "mock/rambling-judge", "--mode", "best-of")
    result, summary = run_json(remote_env, *args)
    assert result["status"] == "ok"
    assert result["judge"]["finish_reason"] == "length" and result["judge"]["truncated"] is True
    assert "(truncated: the judge's reply stopped at max_tokens)" in summary
    # The verdict closed before the cut, and best-of's answer is the winner's text: it is whole.
    assert "the answer is truncated" not in summary

    # merge: the fused answer itself is inside the cut-off reply, so the verdict is unreadable.
    merge_answer = "Fused: " + " ".join(["word"] * (JUDGE_MAX_TOKENS + 50))
    server.script("mock/rambling-merger", default=json.dumps({"answer": merge_answer}))
    proc = fusion(
        remote_env, "run", "Merge these.", "--pool", "mock/alpha,mock/beta", "--judge", "mock/rambling-merger"
    )
    assert proc.returncode == 4, proc.stderr
    failed = next(line for line in proc.stderr.splitlines() if line.startswith("judge failed"))
    assert failed.endswith("(truncated: the judge's reply stopped at max_tokens)")


def merge_reply(answer: str) -> str:
    """A merge verdict for a two-model pool (labels A and B), with the answer first."""
    return json.dumps(
        {
            "answer": answer,
            "consensus": ["Both say the sky scatters blue light more."],
            "contradictions": [],
            "unique_insights": [{"insight": "Mentions sunsets.", "model": "B"}],
            "blind_spots": ["Neither mentions ozone."],
            "confidence": 0.7,
            "rationale": "Both are right; A is clearer, B adds sunsets, so the fused answer keeps both points. "
            "The remaining fields pad the reply so that the answer ends well before the reply does. " * 3,
        }
    )


def read_pty_until(master: int, buffer: bytearray, marker: bytes | None) -> None:
    """Read the child's terminal into ``buffer`` until ``marker`` shows up (or the end, with None)."""
    while marker is None or marker not in buffer:
        ready, _, _ = select.select([master], [], [], PTY_GUARD_S)
        if not ready:
            raise AssertionError(f"nothing on the terminal for {PTY_GUARD_S:.0f} s; so far: {bytes(buffer)!r}")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            if marker is None:
                return
            raise AssertionError(f"the terminal closed before {marker!r}; got {bytes(buffer)!r}")
        buffer += chunk


def test_on_a_terminal_the_fused_answer_streams_as_the_judge_writes_it(
    server: TestServer, remote_env: dict[str, str]
) -> None:
    answer = "Sunlight scatters off air molecules, and blue light scatters most, so the sky looks blue."
    server.script("mock/slow-merger", default=merge_reply(answer), chunk_delay_s=0.3)
    args = ["Why is the sky blue?", "--pool", "mock/alpha,mock/beta", "--judge", "mock/slow-merger"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*FUSION, "run", *args], stdout=slave, stderr=subprocess.PIPE, env=dict(remote_env, COLUMNS=WIDE)
    )
    os.close(slave)
    shown = bytearray()
    try:
        read_pty_until(master, shown, b"Sunlight")
        # The answer's first words are on the terminal while the judge is still writing the rest.
        assert proc.poll() is None and b"looks blue" not in shown
        read_pty_until(master, shown, None)
    finally:
        os.close(master)
        _, stderr = proc.communicate(timeout=PTY_GUARD_S)
    assert proc.returncode == 0, stderr
    assert shown.decode().replace("\r\n", "\n") == answer + "\n"
    assert b"confidence 70%" in stderr and b"unique insight (mock/" in stderr


def test_on_a_terminal_the_live_table_stops_before_the_answer_streams(
    server: TestServer, remote_env: dict[str, str]
) -> None:
    answer = "Blue light is scattered more strongly than red light by the air."
    server.script("mock/slow-merger", default=merge_reply(answer), chunk_delay_s=0.05)
    command = " ".join([*FUSION, "run", "'Why is the sky blue?'", "--pool", "mock/alpha,mock/beta"])
    command += " --judge mock/slow-merger"
    # script(1) gives stdout and stderr one terminal, as a person's shell does.
    proc = subprocess.run(
        ["script", "-q", "-e", "-c", command, "/dev/null"],
        env=dict(remote_env, COLUMNS="200"),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout
    screen = ANSI_CONTROL.sub("", proc.stdout.decode()).replace("\r\n", "\n")
    # The answer arrives in one piece, after the table's last frame and before the verdict.
    assert "\n" + answer + "\n" in screen
    answer_at = screen.index(answer)
    assert "latency" in screen[:answer_at] and "latency" not in screen[answer_at:]  # no table frame after it
    assert answer_at < screen.index("confidence 70%")
    # The table's last frame shows the judge still at work: the answer streamed, it was not printed at the end.
    last_frame = screen[screen.rindex("latency", 0, answer_at) : answer_at]
    assert re.search(r"judge mock/slow-merger +judging", last_frame), last_frame


def test_best_of_on_a_terminal_prints_the_winner_once(remote_env: dict[str, str]) -> None:
    args = "'Why is the sky blue?' --pool mock/alpha,mock/theta --judge mock/judge --mode best-of"
    proc = subprocess.run(
        ["script", "-q", "-e", "-c", " ".join([*FUSION, "run", args]), "/dev/null"],
        env=dict(remote_env, COLUMNS="200"),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout
    screen = proc.stdout.decode()
    assert screen.count('[theta] On "Why is the sky blue?"') == 1
    assert "winner mock/theta" in screen


@fuzz
@given(
    answer=st.text(),
    before=st.sampled_from(["", "Here is my verdict:\n```json\n", "  "]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=40),
)
def test_the_answer_so_far_is_always_a_prefix_of_the_answer(answer: str, before: str, cuts: list[int]) -> None:
    reply = before + json.dumps({"answer": answer, "confidence": 0.5, "consensus": ["x"]}, ensure_ascii=False)
    reply += "\n```\nHope this helps."
    edges = sorted({0, len(reply), *(c % (len(reply) + 1) for c in cuts)})
    reader = AnswerSoFar()
    shown = "".join(reader.feed(reply[a:b]) for a, b in itertools.pairwise(edges))
    assert shown == answer.lstrip()


def test_the_judges_end_gets_its_own_progress_line(remote_env: dict[str, str]) -> None:
    pool = ("--pool", "mock/alpha,mock/beta", "--mode", "merge")
    ok = fusion(remote_env, "run", "Why is the sky blue?", *pool, "--judge", "mock/judge")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stderr.splitlines()
    done = lines.index("  judge mock/judge: done")
    assert (
        lines.index("  judge mock/judge: judging")
        < done
        < next(i for i, line in enumerate(lines) if line.startswith("answered"))
    )

    bad = fusion(remote_env, "run", "Why is the sky blue?", *pool, "--judge", "mock/judge-offformat")
    assert bad.returncode == 4, bad.stderr
    (failed,) = [line for line in bad.stderr.splitlines() if line.startswith("  judge mock/judge-offformat: failed")]
    assert failed.startswith("  judge mock/judge-offformat: failed: judge: ")
