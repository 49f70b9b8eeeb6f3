"""Model specs: how a string on the command line becomes a backend and a model id.

The grammar, one shape per concept::

    vendor/model[:variant]      an OpenRouter model (e.g. openai/gpt-4o, meta-llama/x:free)
    ENDPOINT:model              a model on a configured [endpoints.ENDPOINT]
    local/NAME                  a named local GGUF (local/gemma-3-270m is embedded)
    gguf:/path/to/file.gguf     any GGUF file, run in process by llama.cpp
    SPEC*N                      N samples of SPEC with different seeds (self-consistency)

A judge spec may also be ``likelihood:SPEC`` (a local model ranking
candidates by log-probability; best-of only), ``reviewer:SPEC`` (the same plus
Coder-Reviewer's log p(prompt | candidate)), ``exec`` (run code candidates in
the sandbox), or ``exec+JUDGE`` (execution first, JUDGE breaks ties; in merge
mode JUDGE merges, seeing the execution results).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fusion_core.backends.base import Backend
from fusion_core.backends.openai_http import (
    OPENROUTER_BASE_URL,
    OPENROUTER_BASE_URL_ENV,
    OPENROUTER_KEY_ENV,
    HttpClients,
    OpenAICompatibleBackend,
)
from fusion_core.config import Config
from fusion_core.errors import ConfigError, EgressBlocked, MissingKey
from fusion_core.secrets import Secret, register_env_keys

if TYPE_CHECKING:
    from fusion_core.backends.llama_memory import LocalModel

OPENROUTER = "openrouter"
LOCAL_PREFIX = "local/"
GGUF_PREFIX = "gguf:"
LIKELIHOOD_PREFIX = "likelihood:"
REVIEWER_PREFIX = "reviewer:"
EXEC_JUDGE = "exec"
EXEC_PREFIX = "exec+"
MAX_SAMPLES = 16
# Samples of one model differ by seed and, when no temperature is given, by temperature.
# Only the first sample is greedy: on small models it is often the best one, and the judge
# then chooses between it and more adventurous samples. Every other sample gets its own
# temperature (a second greedy sample would repeat the first word for word, whatever its
# seed), so SPEC*N never wastes a call on a duplicate.
SAMPLE_TEMPERATURES = (0.0, 0.7, 1.0, 0.85, 0.55, 1.15, 0.6, 0.95, 0.75, 1.1, 0.65, 0.9, 0.8, 1.05, 0.5, 1.2)

_SAMPLES = re.compile(r"^(?P<spec>.+?)\*(?P<n>\d+)$")


@dataclass(frozen=True)
class Member:
    """One pool member: a unique display name, its spec, and sampling overrides."""

    name: str
    spec: str
    seed: int | None = None
    temperature: float | None = None

    @property
    def is_local(self) -> bool:
        return is_local_spec(self.spec)


def is_local_spec(spec: str) -> bool:
    """True for models that run in this process (no network)."""
    return spec.startswith((LOCAL_PREFIX, GGUF_PREFIX))


def expand_pool(specs: list[str] | tuple[str, ...]) -> list[Member]:
    """Turn pool specs into members, expanding ``SPEC*N`` into N seeded samples."""
    members: list[Member] = []
    seen: dict[str, int] = {}
    for raw in specs:
        spec = raw.strip()
        if not spec:
            raise ConfigError("the pool has an empty model name", hint="Remove the stray comma.")
        match = _SAMPLES.match(spec)
        count = 1
        if match:
            spec, count = match["spec"], int(match["n"])
            if not 1 <= count <= MAX_SAMPLES:
                raise ConfigError(f"{raw}: sample count must be 1..{MAX_SAMPLES}", hint=f"Write e.g. {spec}*3.")
        for i in range(count):
            seen[spec] = seen.get(spec, 0) + 1
            name = spec if seen[spec] == 1 and count == 1 else f"{spec}#{seen[spec]}"
            if count > 1:
                members.append(
                    Member(
                        name=name,
                        spec=spec,
                        seed=1000 + seen[spec],
                        temperature=SAMPLE_TEMPERATURES[i],
                    )
                )
            else:
                members.append(Member(name=name, spec=spec))
    _rename_first_duplicates(members)
    return members


def _rename_first_duplicates(members: list[Member]) -> None:
    # A spec listed twice as plain entries ("a, a") becomes a#1, a#2 so names stay unique.
    names = [m.name for m in members]
    for i, member in enumerate(members):
        if names.count(member.name) > 1:
            members[i] = Member(
                name=f"{member.spec}#1", spec=member.spec, seed=member.seed, temperature=member.temperature
            )
            names[i] = members[i].name


@dataclass(frozen=True)
class JudgeSpec:
    """A parsed judge spec: the judge model (empty for ``exec`` alone) and how it judges."""

    model: str
    likelihood: bool = False
    reviewer: bool = False
    execute: bool = False


def parse_judge_spec(spec: str) -> JudgeSpec:
    """``exec``, ``exec+JUDGE``, ``likelihood:SPEC``, ``reviewer:SPEC`` or a model spec."""
    text = spec.strip()
    if text == EXEC_JUDGE:
        return JudgeSpec("", execute=True)
    execute = text.startswith(EXEC_PREFIX)
    if execute:
        text = text[len(EXEC_PREFIX) :]
        if not text:
            raise ConfigError(
                f"{spec}: no tie-break judge after 'exec+'", hint="Write exec, or exec+likelihood:local/..."
            )
    for prefix, reviewer in ((LIKELIHOOD_PREFIX, False), (REVIEWER_PREFIX, True)):
        if text.startswith(prefix):
            inner = text[len(prefix) :]
            if not is_local_spec(inner):
                raise ConfigError(
                    f"{spec}: the likelihood judge needs a local model",
                    hint=f"Use {prefix}local/gemma-3-270m or {prefix}gguf:/path/model.gguf.",
                )
            return JudgeSpec(inner, likelihood=True, reviewer=reviewer, execute=execute)
    return JudgeSpec(text, execute=execute)


def split_judge_spec(spec: str) -> tuple[str, bool]:
    """(the judge model's spec, True when no LLM writes a verdict: likelihood, or ``exec`` alone)."""
    parsed = parse_judge_spec(spec)
    return parsed.model, parsed.likelihood or not parsed.model


class BackendResolver:
    """Maps specs to backends, sharing HTTP clients and loaded local models."""

    def __init__(
        self, config: Config, clients: HttpClients, *, local_only: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self._config = config
        self._clients = clients
        self._local_only = local_only or config.local_only
        self._env = os.environ if env is None else env
        # Every configured key is scrubbed from output from now on, used in this run or not.
        key_names = [OPENROUTER_KEY_ENV, *(e.api_key_env for e in config.endpoints.values())]
        register_env_keys(self._env, key_names)
        self._http: dict[str, OpenAICompatibleBackend] = {}
        self._custom: dict[str, Backend] = {}
        self._held: list[LocalModel] = []  # local models this session keeps loaded

    def register(self, name: str, backend: Backend) -> None:
        """Serve specs ``name:model`` from ``backend`` (e.g. a ScriptedBackend in tests)."""
        if "/" in name or ":" in name:
            raise ConfigError(f"backend name {name!r} may not contain '/' or ':'")
        self._custom[name] = backend

    @property
    def local_only(self) -> bool:
        return self._local_only

    def check_egress(self, specs: list[str]) -> None:
        """Under local-only, refuse every remote spec before anything is opened."""
        if not self._local_only:
            return
        remote = [s for s in specs if not is_local_spec(s)]
        if remote:
            raise EgressBlocked(f"local-only mode refused remote models: {', '.join(remote)}")

    def resolve(self, spec: str) -> tuple[Backend, str]:
        """The backend serving ``spec`` and the model id to send it."""
        if is_local_spec(spec):
            from fusion_core.backends.llama import local_backend  # heavy: import on first use

            backend, model_id = local_backend(spec, self._config.local)
            if not any(held is backend.model for held in self._held):
                backend.model.hold()
                self._held.append(backend.model)
            return backend, model_id
        prefix, sep, model = spec.partition(":")
        if sep and prefix in self._custom:
            return self._custom[prefix], model
        self.check_egress([spec])
        endpoint, model = self._split_endpoint(spec)
        return self.http_backend(endpoint), model

    def release_local(self) -> None:
        """Let go of this session's local models; one no open session holds is unloaded."""
        held, self._held = self._held, []
        for model in held:
            model.release()

    def http_backend(self, endpoint: str, *, require_key: bool = True) -> OpenAICompatibleBackend:
        """The (cached) backend for a named HTTP endpoint."""
        if self._local_only:
            raise EgressBlocked(f"local-only mode refused the {endpoint} endpoint")
        if endpoint != OPENROUTER and endpoint not in self._config.endpoints:
            known = ", ".join([OPENROUTER, *self._config.endpoints])
            raise ConfigError(f"unknown endpoint {endpoint!r}", hint=f"Known endpoints: {known}.")
        backend = self._http.get(endpoint)
        if backend is None:
            backend = self._make_http(endpoint, require_key=require_key)
            if backend._api_key or require_key:
                self._http[endpoint] = backend
        return backend

    def has_openrouter_key(self) -> bool:
        return bool(self._env.get(OPENROUTER_KEY_ENV, "").strip())

    def _split_endpoint(self, spec: str) -> tuple[str, str]:
        prefix, sep, rest = spec.partition(":")
        if sep and "/" not in prefix:
            if prefix == OPENROUTER:
                return OPENROUTER, rest
            if prefix in self._config.endpoints:
                return prefix, rest
            raise ConfigError(
                f"unknown endpoint {prefix!r} in model spec {spec!r}",
                hint=f"Define [endpoints.{prefix}] with a base_url in fusion.toml, "
                "or write an OpenRouter id like vendor/model.",
            )
        if "/" not in spec:
            raise ConfigError(
                f"{spec!r} is not a model spec",
                hint="Use vendor/model (OpenRouter), ENDPOINT:model, local/NAME or gguf:/path.",
            )
        return OPENROUTER, spec

    def _make_http(self, endpoint: str, *, require_key: bool) -> OpenAICompatibleBackend:
        if endpoint == OPENROUTER:
            key = self._env.get(OPENROUTER_KEY_ENV, "").strip()
            if not key and require_key:
                raise MissingKey(
                    f"{OPENROUTER_KEY_ENV} is not set, so OpenRouter models cannot be used",
                    hint=f"export {OPENROUTER_KEY_ENV}=sk-or-v1-... (https://openrouter.ai/keys), "
                    "or use local/ models.",
                )
            return OpenAICompatibleBackend(
                name=OPENROUTER,
                base_url=self._env.get(OPENROUTER_BASE_URL_ENV) or OPENROUTER_BASE_URL,
                api_key=Secret(key) if key else None,
                clients=self._clients,
                attribution=True,
                openrouter_fields=True,
                limits=self._config.limits,
            )
        conf = self._config.endpoints[endpoint]
        key_value = self._env.get(conf.api_key_env, "").strip() if conf.api_key_env else ""
        if conf.api_key_env and not key_value and require_key:
            raise MissingKey(
                f"{conf.api_key_env} is not set, but [endpoints.{endpoint}] needs it",
                hint=f"export {conf.api_key_env}=..., or remove api_key_env from the endpoint.",
            )
        return OpenAICompatibleBackend(
            name=endpoint,
            base_url=conf.base_url,
            api_key=Secret(key_value) if key_value else None,
            clients=self._clients,
            attribution=conf.attribution,
            limits=self._config.limits,
        )
