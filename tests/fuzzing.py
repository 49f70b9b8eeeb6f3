"""Shared hypothesis settings for the fuzz tests.

Small by default so CI stays fast; ``FUSION_FUZZ_EXAMPLES=5000`` runs a long campaign.
The deadline makes any single example that takes a second or more a failure: nothing
that parses outside input may be slow on some input.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("FUSION_FUZZ_EXAMPLES", "60"))

fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
