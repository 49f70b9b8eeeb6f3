"""inspect_ai's entry point for Fusion: registers the ``fusion`` model provider.

pyproject.toml points the ``inspect_ai`` entry-point group here; inspect imports
this module only when it resolves a model, so ``fusion`` itself never loads inspect.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import modelapi


@modelapi(name="fusion")
def fusion() -> type[Any]:
    """The Fusion provider class, imported on first use."""
    from fusion_core.eval.provider import FusionModelAPI

    return FusionModelAPI
