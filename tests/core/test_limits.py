"""The [limits] table of fusion.toml: documented defaults, overrides, and clear mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_core.config import parse_config
from fusion_core.errors import ConfigError
from fusion_core.limits import DEFAULT_ANSWER_BYTES, DEFAULT_ERROR_BODY_BYTES, Limits, format_bytes


def test_no_table_means_the_documented_defaults() -> None:
    limits = parse_config("").limits
    assert limits == Limits()
    assert limits.answer_bytes == DEFAULT_ANSWER_BYTES == 4 * 1024 * 1024
    assert limits.error_body_bytes == DEFAULT_ERROR_BODY_BYTES == 64 * 1024


def test_overrides_keep_the_other_defaults() -> None:
    limits = parse_config("[limits]\nanswer_bytes = 8388608\nevent_bytes = 2048\n").limits
    assert limits == Limits(answer_bytes=8 * 1024 * 1024, event_bytes=2048)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[limits]\nanswer = 5\n", 2, "unknown key 'answer'"),
        ('[limits]\nanswer_bytes = "4 MB"\n', 2, "whole number of bytes"),
        ("[limits]\nevent_bytes = true\n", 2, "whole number of bytes"),
        ("[limits]\nevent_bytes = 1.5\n", 2, "whole number of bytes"),
        ("\n[limits]\nresponse_bytes = 0\n", 3, "outside 1024.."),
        ("[limits]\ncatalog_bytes = -1\n", 2, "outside 1024.."),
        ("limits = 5\n", 1, "limits must be a table"),
    ],
)
def test_mistakes_name_the_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, Path("fusion.toml"))
    assert f"fusion.toml:{line}" in info.value.message and message in info.value.message


def test_byte_counts_read_the_way_users_write_them() -> None:
    assert [format_bytes(n) for n in (65536, 4 * 1024 * 1024, 1000, 3 * 1024**3)] == [
        "64 KiB",
        "4 MiB",
        "1000 bytes",
        "3 GiB",
    ]
