"""Model specs: how a string on the command line becomes a backend and a model id.

The grammar, one shape per concept::

    vendor/model[:variant]      an OpenRouter model (e.g. openai/gpt-4o, meta-llama/x:free)
    ENDPOINT:model              a model on a configured [endpoints.ENDPOINT]
    local/NAME                  a named local GGUF (local/gemma-3-270m is embedded)
    gguf:/path/to/file.gguf     any GGUF file, run in process by llama.cpp
    NAME/model, NAME:model      a model of an installed provider plugin named NAME
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

from fusion_core.backends.base import Backend
from fusion_core.backends.openai_http import OPENROUTER_KEY_ENV, HttpClients, OpenAICompatibleBackend
from fusion_core.backends.providers import OPENROUTER, HttpProvider
from fusion_core.backends.registry import Provider, ProviderContext, installed_providers, load_provider, spec_prefix
from fusion_core.config import Config
from fusion_core.errors import ConfigError, EgressBlocked
from fusion_core.local_models import GGUF_PREFIX, LOCAL_PREFIX
from fusion_core.secrets import register_env_keys

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
    """Maps specs to backends through the ``fusion.backends`` providers, one provider instance per session.

    A spec goes to the provider named by its prefix (``local/``, ``gguf:``, an installed
    plugin's ``NAME/``), to the HTTP provider for ``ENDPOINT:model`` on a configured endpoint,
    and otherwise to the default, OpenRouter (:mod:`fusion_core.backends.registry`).
    """

    def __init__(
        self, config: Config, clients: HttpClients, *, local_only: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self._config = config
        self._local_only = local_only or config.local_only
        self._env = os.environ if env is None else env
        # Every configured key is scrubbed from output from now on, used in this run or not.
        key_names = [OPENROUTER_KEY_ENV, *(e.api_key_env for e in config.endpoints.values())]
        register_env_keys(self._env, key_names)
        self._context = ProviderContext(config=config, env=self._env, clients=clients)
        self._registered: dict[str, Provider] = {}  # backend instances (tests), ahead of every plugin
        self._providers: dict[str, Provider] = {}  # entry-point providers, made on first use

    def register(self, name: str, backend: Backend) -> None:
        """Serve specs ``name:model`` from ``backend`` (e.g. a ScriptedBackend in tests)."""
        if "/" in name or ":" in name:
            raise ConfigError(f"backend name {name!r} may not contain '/' or ':'")
        self._registered[name] = _Registered(name, backend)

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
        registered = self._registered.get(spec_prefix(spec))
        if registered is not None:  # an instance in this process: nothing leaves it
            return registered.resolve(spec)
        self.check_egress([spec])
        return self._provider(self._provider_name(spec)).resolve(spec)

    def http_backend(self, endpoint: str, *, require_key: bool = True) -> OpenAICompatibleBackend:
        """The (cached) backend for a named HTTP endpoint."""
        if self._local_only:
            raise EgressBlocked(f"local-only mode refused the {endpoint} endpoint")
        provider = self._provider(OPENROUTER)
        if not isinstance(provider, HttpProvider):  # a plugin replaced the default provider
            raise ConfigError(f"the {OPENROUTER!r} provider does not serve named endpoints")
        return provider.backend(endpoint, require_key=require_key)

    def has_openrouter_key(self) -> bool:
        return bool(self._env.get(OPENROUTER_KEY_ENV, "").strip())

    def _provider_name(self, spec: str) -> str:
        prefix = spec_prefix(spec)
        if spec.startswith(f"{prefix}:") and prefix in self._config.endpoints:
            return OPENROUTER  # the user's named endpoint wins over a plugin of the same name
        return prefix if prefix in installed_providers() else OPENROUTER

    def _provider(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            provider = self._providers[name] = load_provider(name, self._context)
        return provider


class _Registered:
    """A backend instance registered under a name: serves ``name:model`` (and ``name/model``)."""

    def __init__(self, name: str, backend: Backend) -> None:
        self._prefix_length = len(name) + 1
        self._backend = backend

    def resolve(self, spec: str) -> tuple[Backend, str]:
        return self._backend, spec[self._prefix_length :]
