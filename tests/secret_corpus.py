"""A corpus of planted secrets, one per kind, for the redaction tests (core and LSP).

Each entry is the line as it would appear in a file, and the values that must never
reach a remote model. The values are fake but have the real shapes: lengths,
prefixes, alphabets; the random parts come from a seeded generator.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

_rng = random.Random(8)
ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


@dataclass(frozen=True)
class Planted:
    kind: str
    line: str
    secrets: tuple[str, ...]


def _pem(kind: str, lines: int) -> tuple[str, tuple[str, ...]]:
    body = tuple(rand(64, B64) for _ in range(lines))
    block = "\n".join([f"-----BEGIN {kind}PRIVATE KEY-----", *body, f"-----END {kind}PRIVATE KEY-----"])
    return block, body


_jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + rand(43, ALNUM + "-_")
_url_pw = rand(14)
_stripe = "sk_live_" + rand(24)
_hex64 = rand(64, HEX)
_twilio = "AC" + rand(32, LOWER_ALNUM)
_sendgrid = "SG." + rand(22, ALNUM + "-_") + "." + rand(43, ALNUM + "-_")
_stripe_env = rand(28)
_mailgun = "key-" + rand(32, LOWER_ALNUM)
_aws_id = "AKIA" + rand(16, string.ascii_uppercase + string.digits)
_aws_secret = rand(40, B64)
_ghp = "ghp_" + rand(36)
_gh_pat = "github_pat_" + rand(22) + "_" + rand(59)
_rsa, _rsa_body = _pem("RSA ", 6)
_openssh, _openssh_body = _pem("OPENSSH ", 5)
_pgp, _pgp_body = _pem("PGP ", 4)
_slack = "xoxb-" + rand(10, string.digits) + "-" + rand(13, string.digits) + "-" + rand(24, LOWER_ALNUM)
_webhook = "https://hooks.slack.com/services/T" + rand(8, "ABCDEFGHJ0123456789") + "/B" + rand(8) + "/" + rand(24)
_google = "AIza" + rand(35, ALNUM + "-_")
_openrouter = "sk-or-v1-" + rand(64, HEX)
_anthropic = "sk-ant-api03-" + rand(93, ALNUM + "-_") + "AA"
_npm = "npm_" + rand(36)
_pypi = "pypi-AgEIcHlwaS5vcmc" + rand(80, ALNUM + "-_")
_discord = "M" + rand(23) + "." + rand(6) + "." + rand(27)
_telegram = rand(9, string.digits) + ":AA" + rand(33, ALNUM + "-_")
_mailchimp = rand(32, HEX) + "-us12"
_gitlab = "glpat-" + rand(20, ALNUM + "-_")
_password = "correct horse battery staple"
_bearer = rand(40, ALNUM + "._-")
_azure = rand(86, B64) + "=="
_b64 = rand(48, B64)
_square = "sq0csp-" + rand(43, ALNUM + "-_")
_env_password = rand(12)

CORPUS: tuple[Planted, ...] = (
    Planted("jwt", f"# session for debugging: {_jwt}", (_jwt, _jwt.rsplit(".", 1)[-1])),
    Planted("password_in_url", f'DATABASE_URL = "postgres://app:{_url_pw}@db.internal:5432/app"', (_url_pw,)),
    Planted("stripe_live_key", f'stripe.Client("{_stripe}")', (_stripe,)),
    Planted("hex_token_64", f'SESSION_SEAL = "{_hex64}"', (_hex64,)),
    Planted("twilio_sid", f'client = Client("{_twilio}", auth)', (_twilio,)),
    Planted("sendgrid_key", f"sg = SendGridAPIClient('{_sendgrid}')", (_sendgrid,)),
    Planted("env_stripe_key", f"STRIPE_KEY={_stripe_env}", (_stripe_env,)),
    Planted("env_mailgun", f"MAILGUN={_mailgun}", (_mailgun,)),
    Planted("aws_access_key_id", f"boto3.client('s3', aws_access_key_id='{_aws_id}')", (_aws_id,)),
    Planted("aws_secret_key", f'aws_secret = "{_aws_secret}"', (_aws_secret,)),
    Planted("github_token", f"gh = Github('{_ghp}')", (_ghp,)),
    Planted("github_fine_grained", f"GH = Github({_gh_pat!r})", (_gh_pat,)),
    Planted("rsa_private_key", f'RSA = """{_rsa}"""', _rsa_body),
    Planted("openssh_private_key", _openssh, _openssh_body),
    Planted("pgp_private_key", _pgp.replace("KEY-----", "KEY BLOCK-----"), _pgp_body),
    Planted("slack_token", f'slack = WebClient(token_value("{_slack}"))', (_slack,)),
    Planted("slack_webhook", f"requests.post('{_webhook}', json=msg)", (_webhook.rsplit("/", 1)[-1],)),
    Planted("google_api_key", f'maps = Maps("{_google}")', (_google,)),
    Planted("openrouter_key", f"client = OpenAI(base_url=URL, api='{_openrouter}')", (_openrouter,)),
    Planted("anthropic_key", f"claude = Anthropic(auth='{_anthropic}')", (_anthropic,)),
    Planted("npm_token", f"//registry.npmjs.org/:_authToken={_npm}", (_npm,)),
    Planted("pypi_token", f"upload(token='{_pypi}')", (_pypi,)),
    Planted("discord_bot_token", f"bot.run('{_discord}')", (_discord,)),
    Planted("telegram_bot_token", f'Bot("{_telegram}")', (_telegram,)),
    Planted("mailchimp_key", f'mc.set_config({{"api": "{_mailchimp}"}})', (_mailchimp,)),
    Planted("gitlab_token", f"gl = Gitlab(url, private='{_gitlab}')", (_gitlab,)),
    Planted("password_assignment", f'db_password = "{_password}"', (_password,)),
    Planted("bearer_header", f'headers = {{"Authorization": "Bearer {_bearer}"}}', (_bearer,)),
    Planted(
        "azure_storage_key",
        f'CONN = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={_azure};EndpointSuffix=x"',
        (_azure,),
    ),
    Planted("high_entropy_base64", f'blob = "{_b64}"', (_b64,)),
    Planted("square_oauth", f'square = Square("{_square}")', (_square,)),
    Planted("env_password", f"DB_PASSWORD={_env_password}", (_env_password,)),
)

# Code around the planted lines that must reach the model unchanged.
KEPT = ("max_tokens = 512", 'token = os.environ["TOKEN"]', "password = get_password()", "DEBUG=true")


def corpus_file() -> str:
    """Every planted line in one file, between lines that are not secrets."""
    return "\n".join(["import os", *KEPT[:3], *(p.line for p in CORPUS), KEPT[3], ""])
