"""Secret redaction of code before it goes to a remote model: a corpus, long lines, fuzzing."""

from __future__ import annotations

import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from secret_corpus import CORPUS, KEPT, corpus_file

from fusion_core.redaction import PLACEHOLDER_PREFIX, redact_code, wire_text

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


# -- the corpus: every kind of secret a probe planted, and more -------------------------------


def test_the_corpus_has_every_kind_the_probe_found_and_more() -> None:
    kinds = {p.kind for p in CORPUS}
    probe = {"jwt", "password_in_url", "stripe_live_key", "hex_token_64", "twilio_sid", "sendgrid_key"}
    assert probe | {"env_stripe_key", "env_mailgun"} <= kinds
    assert len(kinds) >= 22


@pytest.mark.parametrize("planted", CORPUS, ids=lambda p: p.kind)
def test_each_planted_secret_is_redacted(planted) -> None:  # type: ignore[no-untyped-def]
    result = redact_code(planted.line)
    assert result.count >= 1
    for secret in planted.secrets:
        assert secret not in result.text
    assert result.restore(result.text) == planted.line


def test_a_whole_file_of_secrets_keeps_its_code_and_lines() -> None:
    source = corpus_file()
    result = redact_code(source)
    assert [s for p in CORPUS for s in p.secrets if s in result.text] == []
    assert all(kept in result.text for kept in KEPT)
    assert result.text.count("\n") == source.count("\n")
    assert result.restore(result.text) == source


def test_a_private_key_without_its_end_line_is_still_redacted() -> None:
    body = [("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + str(i) * 8) for i in range(6)]
    source = "\n".join(["key = '''-----BEGIN PRIVATE KEY-----", *body, "'''", "print(key)"])
    result = redact_code(source)
    assert not any(line in result.text for line in body)
    assert result.text.endswith("'''\nprint(key)")


def test_a_placeholder_is_never_followed_by_a_digit() -> None:
    # "..._1" + "5" would read as placeholder 15 when the fix is restored.
    source = 'PASSWORD = "x"\n' * 14 + "stripe('sk_live_" + "a1B2c3D4e5F6g7H8i9J0k1L2" + "345')"
    result = redact_code(source)
    assert result.restore(result.text) == source


# -- no superlinear regex: a 1 MB line, a 32 kB hex line, and the shapes that make
# -- detect-secrets' own regexes quadratic or worse. A quadratic would take hours here.


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "unit",
    ["a", "0123456789abcdef", "password", "eyJ", "//", "sk-", "'", "a=", "-----BEGIN RSA PRIVATE KEY-----"],
)
def test_a_one_megabyte_line_is_scanned_in_linear_time(unit: str) -> None:
    stripe = "sk_live_" + "Zz9" * 8
    line = unit * (1_000_000 // len(unit)) + f" stripe('{stripe}')"
    result = redact_code(line)
    assert stripe not in result.text  # the far end of the line is still scanned
    assert "\n" not in result.text


@pytest.mark.timeout(10)
def test_a_32_kilobyte_hex_line_is_fast() -> None:
    # _QUOTED_ASSIGNMENT once took 8.6 s here (quadratic on a run of [\w.-]).
    line = "x = 0x" + "0123456789abcdef" * 2048 + " + 1"
    assert redact_code(line).text == line
    named = "token_" + "0123456789abcdef" * 2048 + ' = "x"'
    assert redact_code(named).text.endswith(f'= "{PLACEHOLDER_PREFIX}1"')


# -- fuzzing ------------------------------------------------------------------------------------

_FRAGMENTS = [
    "\n",
    "\r\n",
    "\r",
    " ",
    "=",
    ":",
    '"',
    "'",
    "`",
    "password",
    "api_key",
    "export ",
    "Bearer ",
    "eyJ",
    ".",
    "//",
    "://u:",
    "@",
    "sk-",
    "sk_live_",
    "AKIA",
    "ghp_",
    "xoxb-",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEAuJ0nZbLn1kJ3dQ8m",
    "0123456789abcdef" * 4,
    "\u200b",
    "\udce9",
    "é",
]
_adversarial = st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=24), max_size=80).map("".join)


def _check_redaction(text: str) -> None:
    result = redact_code(text)
    # Bounded by the input: every replaced span (at least one character) becomes one placeholder.
    bound = len(text) + result.replaced * (len(PLACEHOLDER_PREFIX) + len(str(result.replaced)))
    assert len(result.text) <= bound
    assert result.count <= result.replaced <= len(text)
    for brk in ("\r\n", "\n", "\r"):
        assert result.text.count(brk) == text.count(brk)
    if PLACEHOLDER_PREFIX not in text:
        assert result.restore(result.text) == text


@fuzz
@given(st.text(max_size=2000))
def test_fuzz_random_text(text: str) -> None:
    _check_redaction(text)


@fuzz
@given(_adversarial)
def test_fuzz_adversarial_text(text: str) -> None:
    _check_redaction(text)
