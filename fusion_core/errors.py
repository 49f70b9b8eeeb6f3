"""Every error Fusion raises on purpose, in one small tree.

Foreign exceptions (httpx, llama.cpp, tomllib) are translated once, at the
boundary where they occur, so callers only ever catch these::

    FusionError
    ├── ConfigError             bad fusion.toml, unknown pool, bad model spec
    │   └── CostCapExceeded     a request could cost more than cost_cap_usd
    ├── EgressBlocked           a remote model was asked for under local_only
    ├── MissingKey              a remote model was asked for with no API key set
    ├── BackendError            one model call failed (backend, model, status, retryable)
    │   ├── AuthError           401: bad or missing key
    │   ├── NoCredits           402: insufficient credits
    │   ├── Forbidden           403: moderation or guardrail block
    │   ├── BadRequest          400: invalid request or model id
    │   ├── RateLimited         429
    │   ├── BackendTimeout      408, or no answer within the timeout
    │   ├── UpstreamError       5xx, in-band errors, a stream that died
    │   ├── BadResponse         garbage JSON or an empty reply
    │   ├── ResponseTooLarge    a reply over a [limits] size (line, event, answer, body)
    │   ├── ModelLoadError      a local model that cannot be loaded
    │   └── InternalError       a bug inside a backend, contained to that one call
    └── JudgeError              the judge's reply was unusable, even after one repair

Each error has a short ``kind`` string used in results and JSON output, and a
``hint`` saying what the user can do about it; every front end shows an error
through :meth:`FusionError.describe`. A run in which no candidate answered is not
an exception but data: a result with status ``all_failed`` that keeps every
candidate's error. Messages and hints are scrubbed of
API keys when the error is made (:func:`fusion_core.secrets.scrub`).
"""

from __future__ import annotations

from typing import Any

from fusion_core.secrets import scrub

__all__ = [
    "AuthError",
    "BackendError",
    "BackendTimeout",
    "BadRequest",
    "BadResponse",
    "ConfigError",
    "CostCapExceeded",
    "EgressBlocked",
    "Forbidden",
    "FusionError",
    "InternalError",
    "JudgeError",
    "MissingKey",
    "ModelLoadError",
    "NoCredits",
    "RateLimited",
    "ResponseTooLarge",
    "UpstreamError",
]


class FusionError(Exception):
    """Root of every error Fusion raises on purpose."""

    kind = "error"
    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # Scrubbed once, here: error text often quotes what an endpoint sent, key included.
        message = scrub(message)
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = scrub(hint)

    def describe(self) -> str:
        """One or two lines for a human: what happened, then what to do."""
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message


class ConfigError(FusionError):
    """A configuration file, option or model spec is wrong."""

    kind = "config"


class CostCapExceeded(ConfigError):
    """A request could cost more than the configured per-request cap."""

    kind = "cost_cap"
    hint = "Raise cost_cap_usd in fusion.toml, or use cheaper models or fewer tokens."


class EgressBlocked(FusionError):
    """A remote backend was refused because the run is local-only."""

    kind = "egress_blocked"
    hint = "Drop --local-only (or local_only = true in fusion.toml), or use only local/ and gguf: models."


class MissingKey(FusionError):
    """A remote model was requested but its API key variable is unset."""

    kind = "missing_key"


class BackendError(FusionError):
    """One model call failed."""

    kind = "backend"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        backend: str = "",
        model: str = "",
        status: int | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.backend = backend
        self.model = model
        self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of a failed candidate in the result JSON."""
        return {"kind": self.kind, "message": self.message, "status": self.status}


class AuthError(BackendError):
    kind = "auth"
    hint = "Set a valid key: export OPENROUTER_API_KEY=sk-or-v1-... (keys: https://openrouter.ai/keys)."


class NoCredits(BackendError):
    kind = "no_credits"
    hint = "Add credits at https://openrouter.ai/settings/credits, or drop this model from the pool."


class Forbidden(BackendError):
    kind = "forbidden"
    hint = "The provider's moderation refused the request; rephrase it or pick another model."


class BadRequest(BackendError):
    kind = "bad_request"
    hint = "Check the model id with `fusion models`, and the request options."


class RateLimited(BackendError):
    kind = "rate_limited"
    retryable = True
    hint = "Wait a moment, lower the pool's concurrency, or add credits to raise the limit."


class BackendTimeout(BackendError):
    kind = "timeout"
    retryable = True
    hint = "Raise --timeout, or use --quorum so slow models do not hold up the run."


class UpstreamError(BackendError):
    kind = "upstream"
    retryable = True
    hint = "The model or its provider failed; try again later or pick another model."


class BadResponse(BackendError):
    kind = "bad_response"
    hint = "The endpoint answered with something that is not the OpenAI wire format."


class ResponseTooLarge(BackendError):
    """An endpoint sent more than a configured limit; ``limit`` names the [limits] key."""

    kind = "too_large"

    def __init__(self, message: str, *, limit: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.limit = limit
        if "hint" not in details:
            self.hint = (
                f"The endpoint sent far more than a model normally does. If the answer is wanted, "
                f"raise {limit} under [limits] in fusion.toml; otherwise drop this model."
            )


class ModelLoadError(BackendError):
    kind = "model_load"


class InternalError(BackendError):
    """An unexpected exception inside a backend, contained so the run can go on."""

    kind = "internal"
    hint = "This is a bug in Fusion or in a backend; please report it with the message."


class JudgeError(FusionError):
    """The judge's reply could not be used, even after one repair request."""

    kind = "judge"
    hint = "Every candidate's answer is kept; try another --judge or --mode best-of."
