"""Secret redaction of code before it goes to a remote model."""

from __future__ import annotations

import pytest

from fusion_core.redaction import redact_code, wire_text

OPENROUTER_KEY = "sk-or-v1-" + "0123456789abcdef" * 4
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
PRIVATE_KEY = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAuJ0nZbLn1kJ3dQ8m
x7e2QeKj0s9f8Yt6m5l4k3j2h1g0f9e8
-----END RSA PRIVATE KEY-----"""

SOURCE = f'''import os

OPENROUTER = "{OPENROUTER_KEY}"
aws_id = 'AKIAIOSFODNN7EXAMPLE'
client = Github("{GITHUB_TOKEN}")
db_password = "correct horse battery staple"
config = {{"apiKey": "AIzaSyD-1234567890abcdefghijklmnopqrstu", "clientSecret": 's3cr3t'}}
KEY = """{PRIVATE_KEY}"""
headers = {{"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig"}}
max_tokens = 512
token = os.environ["TOKEN"]
password = get_password()
'''


def test_every_kind_of_secret_is_replaced_and_counted() -> None:
    result = redact_code(SOURCE)

    for secret in (
        OPENROUTER_KEY,
        "AKIAIOSFODNN7EXAMPLE",
        GITHUB_TOKEN,
        "correct horse battery staple",
        "AIzaSyD-1234567890abcdefghijklmnopqrstu",
        "s3cr3t",
        "MIIEowIBAAKCAQEAuJ0nZbLn1kJ3dQ8m",
        "eyJhbGciOiJIUzI1NiJ9.payload.sig",
    ):
        assert secret not in result.text
    assert result.count == 8  # the private key block is one secret, however many lines it has
    assert sorted(result.kinds) == [
        "api_key",
        "aws_access_key",
        "bearer_token",
        "github_token",
        "google_api_key",
        "password",
        "private_key",
        "secret",
    ]
    assert 'OPENROUTER = "REDACTED_SECRET_1"' in result.text
    assert "-----BEGIN RSA PRIVATE KEY-----\nREDACTED_SECRET_" in result.text


def test_code_that_only_names_secrets_is_left_alone() -> None:
    result = redact_code(SOURCE)
    assert "max_tokens = 512" in result.text
    assert 'token = os.environ["TOKEN"]' in result.text
    assert "password = get_password()" in result.text
    assert redact_code("def check(password):\n    return password == expected\n").count == 0


def test_line_structure_is_kept_and_restore_is_exact() -> None:
    result = redact_code(SOURCE)
    assert result.text.count("\n") == SOURCE.count("\n")
    assert [len(line) > 0 for line in result.text.split("\n")] == [len(line) > 0 for line in SOURCE.split("\n")]
    assert result.restore(result.text) == SOURCE
    suggestion = 'db_password = os.environ.get("DB_PASSWORD", "REDACTED_SECRET_4")'
    assert result.restore(suggestion) == 'db_password = os.environ.get("DB_PASSWORD", "correct horse battery staple")'


def test_env_files_and_json() -> None:
    env = "DB_HOST=localhost\nDB_PASSWORD=hunter2\nexport API_TOKEN=abc123def\nDEBUG=true\n"
    result = redact_code(env)
    assert result.count == 2
    assert "DB_HOST=localhost" in result.text and "DEBUG=true" in result.text
    assert "hunter2" not in result.text and "abc123def" not in result.text
    assert redact_code('{"password": "p@ss", "user": "bob"}').text == '{"password": "REDACTED_SECRET_1", "user": "bob"}'


def test_a_key_inside_a_secret_assignment_counts_once() -> None:
    result = redact_code(f'api_key = "{OPENROUTER_KEY}"')
    assert result.count == 1 and result.text == 'api_key = "REDACTED_SECRET_1"'


def test_the_secret_values_never_show_in_a_repr_or_summary() -> None:
    result = redact_code(SOURCE)
    assert OPENROUTER_KEY not in repr(result) and "s3cr3t" not in repr(result)
    assert result.summary() == (
        "8 secrets (api_key, aws_access_key, bearer_token, github_token, google_api_key, password, private_key, secret)"
    )
    assert redact_code("x = 1").summary() == "no secrets"


@pytest.mark.parametrize("text", ["", "plain text", "caf\udce9 \ud800", "\x00\x01binary"])
def test_odd_text_does_not_break_it(text: str) -> None:
    result = redact_code(text)
    assert result.restore(result.text) == text
    cleaned = wire_text(text)
    assert len(cleaned) == len(text)
    cleaned.encode("utf-8")
