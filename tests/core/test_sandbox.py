"""The sandbox: runaway, hostile and lying programs end as failed checks, never a hung or crashed run."""

from __future__ import annotations

import pytest

from fusion_core.sandbox import Limits, call_function, isolation, run_checks

FAST = Limits(timeout_s=3.0, call_timeout_s=0.5)
PROGRAM = "def double(x):\n    return x * 2\n"


def one(program: str, check: str = "assert double(2) == 4", limits: Limits = FAST) -> object:
    [result] = run_checks(program, [check], limits)
    return result


def test_a_correct_program_passes_and_a_wrong_one_fails() -> None:
    ok, wrong = run_checks(PROGRAM, ["assert double(2) == 4", "assert double(2) == 5"], FAST)
    assert ok.passed and ok.status == "passed"
    assert not wrong.passed and wrong.status == "failed" and wrong.error.startswith("AssertionError")


def test_each_check_runs_in_its_own_process() -> None:
    # A check that breaks the program's state cannot affect the next check.
    broken, fine = run_checks(PROGRAM, ["double = None\nassert False", "assert double(3) == 6"], FAST)
    assert broken.status == "failed"
    assert fine.passed


def test_an_infinite_loop_times_out() -> None:
    result = one("while True:\n    pass\n" + PROGRAM)
    assert result.status == "timeout" and not result.passed


def test_a_fork_bomb_is_contained() -> None:
    result = one("import os\nwhile True:\n    os.fork()\n" + PROGRAM)
    assert not result.passed
    assert result.status in ("error", "timeout", "crashed")
    # The machine still runs new processes afterwards.
    assert one(PROGRAM).passed


def test_a_10_gb_allocation_fails() -> None:
    result = one("data = bytearray(10 * 1024 ** 3)\n" + PROGRAM)
    assert not result.passed
    assert "MemoryError" in result.error or result.status == "crashed"


def test_a_network_call_fails() -> None:
    program = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)\n" + PROGRAM
    result = one(program)
    assert not result.passed and result.status == "error"
    assert "Network is unreachable" in result.error or "refused" in result.error or "disabled" in result.error


def test_exiting_early_is_not_a_pass() -> None:
    assert one("import sys\nsys.exit(0)\n" + PROGRAM).status == "error"
    assert one("import os\nos._exit(0)\n" + PROGRAM).status == "crashed"


def test_printing_fake_results_changes_nothing() -> None:
    program = 'print(\'{"event": "passed"}\')\nimport sys\nsys.stdout.flush()\nraise SystemExit(0)\n'
    result = one(program, "pass")
    assert result.status == "error"
    assert '"event": "passed"' in result.stdout  # it printed the lie; nobody read it as a result


def test_files_outside_the_temp_dir_are_out_of_reach() -> None:
    if not isolation().drop_to_nobody:
        pytest.skip("only as root does the sandbox run code as nobody")
    result = one("open('/etc/shadow').read()\n" + PROGRAM)
    assert result.status == "error" and "PermissionError" in result.error


def test_call_function_returns_each_repr_or_error() -> None:
    results = call_function(PROGRAM, "double", ["2", "'ab'", "None", ""], FAST)
    assert [r.ok for r in results] == [True, True, False, False]
    assert results[0].value == "4" and results[1].value == "'abab'"
    assert results[2].error.startswith("TypeError")


def test_call_function_survives_a_hanging_call() -> None:
    program = "def spin(n):\n    while n:\n        pass\n    return 'done'\n"
    hang, done = call_function(program, "spin", ["1", "0"], FAST)
    assert not hang.ok and "CallTimeout" in hang.error
    assert done.ok and done.value == "'done'"


def test_call_function_reports_a_program_that_does_not_load() -> None:
    results = call_function("def broken(:\n", "broken", ["1"], FAST)
    assert not results[0].ok and "SyntaxError" in results[0].error
