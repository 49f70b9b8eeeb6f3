"""Fusion in Jupyter: the ``%%fuse`` cell magic and a live view of every model.

::

    %load_ext fusion_jupyter

    %%fuse --pool openai/gpt-4o,google/gemini-2.5-pro --judge anthropic/claude-3.7-sonnet --mode merge -o result
    Compare {library_a} and {library_b} for streaming JSON parsing.

The options are the CLI's (``fusion run --help``), parsed by the same code;
``{name}`` is filled from the notebook's variables. ``%fuse_pools`` lists the
pools and ``%fuse_config`` shows the configuration or sets session defaults.
Everything here only turns the engine's event stream into widgets and text.
"""

from __future__ import annotations

from typing import Any

from fusion_jupyter.fallback import FusionOutput
from fusion_jupyter.magic import FusionMagicError, FusionMagics, interpolate
from fusion_jupyter.session import FusionSession

__all__ = [
    "FusionMagicError",
    "FusionMagics",
    "FusionOutput",
    "FusionSession",
    "interpolate",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext fusion_jupyter``: register the magics with one session for this shell."""
    magics = FusionMagics(shell=ipython)
    ipython.register_magics(magics)
    # Lets `%config FusionMagics.view = "text"` find the instance.
    ipython.configurables.append(magics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext``/``%reload_ext``: close the session's engine and connections."""
    magics = ipython.magics_manager.registry.pop("FusionMagics", None)
    if magics is not None:
        magics.session.close()
        if magics in ipython.configurables:
            ipython.configurables.remove(magics)
