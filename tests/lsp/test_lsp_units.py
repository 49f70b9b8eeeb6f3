"""The server's building blocks without a process: settings, positions, line shifts, findings."""

from __future__ import annotations

import asyncio
import os

import pytest
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from fusion_core.backends.llama.models import embedded_model_path, resolve_model_path
from fusion_core.config import LocalConfig, parse_config
from fusion_core.review import Finding, merge_findings
from fusion_core.specs import expand_pool
from fusion_lsp.__main__ import parse_tcp
from fusion_lsp.documents import (
    ChangeLog,
    LineChange,
    lines_range,
    replace_lines_edit,
    shift_lines,
    split_lines,
    text_around,
)
from fusion_lsp.findings import FindingStore, LiveFinding, follow_changes
from fusion_lsp.settings import DEFAULT_COMPLETION_POOL, LspSettings, build_settings, local_threads, server_config
from fusion_lsp.tasks import TaskRegistry, await_work

UTF16 = PositionCodec(types.PositionEncodingKind.Utf16)
UTF32 = PositionCodec(types.PositionEncodingKind.Utf32)
KEY_ENV = {"OPENROUTER_API_KEY": "sk-or-v1-test"}
TOML = """
cost_cap_usd = 0.5
[pools.review]
models = ["a/one", "b/two"]
judge = "c/judge"
timeout = 30
[pools.completion]
models = ["local/gemma-3-270m*2"]
judge = "likelihood:local/gemma-3-270m"
[lsp]
review_on_save = true
debounce_s = 0.1
"""


# -- settings -------------------------------------------------------------------------------


def test_settings_layer_toml_then_init_options_then_client_settings() -> None:
    config = parse_config(TOML)
    settings, problems = build_settings(
        config,
        [{"reviewOnSave": False, "costCapUsd": 0.25}, {"fusion": {"debounceS": 0, "reviewPool": ["x/y"]}}],
        KEY_ENV,
    )
    assert problems == []
    assert settings.review_pool == ("x/y",) and settings.review_judge == "c/judge"
    assert settings.review_timeout_s == 30 and settings.review_on_save is False
    assert settings.cost_cap_usd == 0.25 and settings.debounce_s == 0.0
    assert settings.completion_pool == ("local/gemma-3-270m*2",)
    assert settings.completion_judge == "likelihood:local/gemma-3-270m"


def test_default_pools_follow_the_key() -> None:
    config = parse_config("")
    remote, _ = build_settings(config, [], KEY_ENV)
    local, _ = build_settings(config, [], {})
    assert remote.review_judge is not None and not remote.review_pool[0].startswith("local/")
    assert local.review_pool == ("tool:ruff", "tool:bandit") and local.review_judge is None  # #13
    assert remote.completion_pool == local.completion_pool == DEFAULT_COMPLETION_POOL
    assert build_settings(parse_config("local_only = true"), [], KEY_ENV)[0].review_pool == ("tool:ruff", "tool:bandit")


def test_the_run_log_is_off_in_the_server_unless_a_setting_turns_it_on() -> None:
    assert build_settings(parse_config(""), [], {})[0].run_log is False
    assert build_settings(parse_config("[lsp]\nrun_log = true"), [], {})[0].run_log is True
    on, problems = build_settings(parse_config(""), [{"fusion": {"runLog": True}}], {})
    assert on.run_log is True and problems == []
    _, problems = build_settings(parse_config(""), [{"runLog": "yes"}], {})
    assert problems == ["settings: runLog: must be true or false, not str 'yes'"]


def test_the_server_runs_local_models_on_half_the_cores_unless_configured() -> None:
    assert [local_threads(n) for n in (None, 1, 2, 3, 8)] == [1, 1, 1, 1, 4]
    assert server_config(parse_config("")).local.n_threads == local_threads(os.cpu_count())
    assert server_config(parse_config("[local]\nn_threads = 2")).local.n_threads == 2


def test_the_default_completion_pool_is_the_embedded_model() -> None:
    # It once read local/local/gemma-3-270m, and every completion answered nothing.
    settings, _ = build_settings(parse_config(""), [], {})
    for member in expand_pool(settings.completion_pool):
        assert resolve_model_path(member.spec, LocalConfig()) == (embedded_model_path(None), True)


def test_bad_settings_are_reported_not_applied() -> None:
    settings, problems = build_settings(
        parse_config(""),
        [
            {
                "reviewPool": [],
                "debounceS": -1,
                "reviewOnSave": "yes",
                "completionMaxTokens": 0,
                "nope": 1,
                "costCapUsd": None,
                "reviewTimeoutS": None,
            },
            "not an object",
        ],
        {},
    )
    assert settings == LspSettings(review_pool=settings.review_pool)
    assert len(problems) == 6 and any("unknown setting 'nope'" in p for p in problems)


# -- positions and edits ----------------------------------------------------------------------


def test_text_around_counts_columns_in_the_clients_units() -> None:
    lines = split_lines("x = '😀'; y = 1\nz = 2\n")
    # The emoji is two UTF-16 units but one UTF-32 unit: both positions point after "y".
    assert text_around(lines, types.Position(line=0, character=11), UTF16, before=100, after=100) == (
        "x = '😀'; y",
        " = 1\nz = 2\n",
    )
    assert text_around(lines, types.Position(line=0, character=10), UTF32, before=100, after=100)[0] == "x = '😀'; y"
    assert text_around(lines, types.Position(line=0, character=999), UTF16, before=3, after=3) == ("= 1", "\nz ")
    assert text_around(lines, types.Position(line=9, character=0), UTF16, before=3, after=3) is None


def test_ranges_and_edits_cover_whole_lines() -> None:
    lines = split_lines("def f():\n    return '😀'")
    rng = lines_range(lines, 1, 1, UTF16)
    assert (rng.start.character, rng.end.character) == (4, 15)
    assert lines_range(lines, 1, 1, UTF32).end.character == 14
    last = replace_lines_edit(lines, 1, 1, "    return 1", "\n", UTF16)
    assert last.range.end == types.Position(line=1, character=15) and last.new_text == "    return 1"
    middle = replace_lines_edit(lines, 0, 0, "def g():", "\r\n", UTF16)
    assert middle.range.end == types.Position(line=1, character=0) and middle.new_text == "def g():\r\n"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (LineChange(1, (0, 0), (0, 0), 2), (7, 8)),  # two lines inserted at the top
        (LineChange(1, (5, 0), (5, 0), 1), (6, 7)),  # a line inserted right above the finding
        (LineChange(1, (1, 0), (3, 0), 0), (3, 4)),  # two lines deleted above
        (LineChange(1, (5, 3), (5, 9), 0), None),  # an edit inside the finding
        (LineChange(1, (6, 20), (6, 20), 1), None),  # Enter at the end of its last line
        (LineChange(1, (7, 0), (9, 0), 5), (5, 6)),  # edits below do not move it
    ],
)
def test_shift_lines(change: LineChange, expected: tuple[int, int] | None) -> None:
    assert shift_lines(5, 6, change) == expected


def test_change_log_knows_when_it_forgot() -> None:
    log = ChangeLog(size=3)
    for version in range(2, 7):
        log.record(LineChange(version, (0, 0), (0, 0), 1), version)
    assert log.since(5) is not None and len(log.since(5) or []) == 1
    assert log.since(3) is None  # version 3's successors are partly gone
    assert log.since(None) is None


def test_findings_follow_edits_in_the_store() -> None:
    merged = merge_findings(
        {"a": [Finding("a", 3, 3, "error", "bug", "boom", "fixed"), Finding("a", 8, 8, "warning", "bug", "other")]}
    )
    live = [LiveFinding.from_merged(m) for m in merged]
    store = FindingStore()
    store.replace("file:///x.py", live)
    assert store.apply_change("file:///x.py", LineChange(2, (0, 0), (0, 0), 1))
    assert sorted(f.first for f in store.get_all("file:///x.py")) == [3, 8]
    assert store.apply_change("file:///x.py", LineChange(3, (3, 2), (3, 2), 0))
    (left,) = store.get_all("file:///x.py")
    assert left.first == 8 and store.count() == 1
    assert follow_changes(live, [None]) == []  # a whole-document replace drops everything


# -- tasks and the command line ----------------------------------------------------------------


async def test_registry_supersedes_and_cancels_by_request() -> None:
    tasks = TaskRegistry()
    first = tasks.start(("completion", "u"), asyncio.sleep(10), request_id=1)
    second = tasks.start(("completion", "u"), asyncio.sleep(10), request_id=2)
    await asyncio.sleep(0)
    assert first.cancelled() and not second.done()
    assert tasks.cancel_request(2) and not tasks.cancel_request(99)
    finished, value = await await_work(second)
    assert (finished, value) == (False, None) and len(tasks) == 0
    assert await await_work(tasks.start(("x",), asyncio.sleep(0, result=5))) == (True, 5)


def test_parse_tcp() -> None:
    assert parse_tcp("127.0.0.1:2087") == ("127.0.0.1", 2087)
    assert parse_tcp("[::1]:9000") == ("::1", 9000)
    assert parse_tcp(":2087") == ("127.0.0.1", 2087)
    with pytest.raises(ValueError):
        parse_tcp("localhost")
