"""Fusion in Jupyter: the ``%%fuse`` cell magic and a live view of every model.

::

    %load_ext fusion_jupyter

    %%fuse --pool openai/gpt-4o,google/gemini-2.5-pro --judge anthropic/claude-3.7-sonnet --mode merge -o result
    Compare {library_a} and {library_b} for streaming JSON parsing.

The options are the CLI's (``fusion run --help``), parsed by the same code;
``{name}`` is filled from the notebook's variables. ``%fuse_pools`` lists the
pools and ``%fuse_config`` shows the configuration or sets session defaults.
``%fuse [options] prompt`` is the one-line form (a trailing ``?`` is part of
the prompt, not a help request), and ``-f code`` puts the answer's code into a
new cell. Everything here only turns the engine's event stream into widgets and text.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fusion_jupyter.fallback import FusionOutput
    from fusion_jupyter.magic import FusionMagicError, FusionMagics, interpolate
    from fusion_jupyter.session import FusionSession

__all__ = [
    "FusionMagicError",
    "FusionMagics",
    "FusionOutput",
    "FusionSession",
    "INSTALL_HINT",
    "interpolate",
    "load_ipython_extension",
    "missing_extra",
    "unload_ipython_extension",
]

INSTALL_HINT = 'pip install -e ".[jupyter]"'
# The modules of the [jupyter] extra; without any of them the extension does not load.
EXTRA_MODULES = ("IPython", "ipywidgets", "nh3")
# The public names live in modules that need the extra, so they are imported on first use:
# `import fusion_jupyter` works without it and `%load_ext` can say what is missing.
_LAZY = {
    "FusionMagicError": "fusion_jupyter.magic",
    "FusionMagics": "fusion_jupyter.magic",
    "interpolate": "fusion_jupyter.magic",
    "FusionOutput": "fusion_jupyter.fallback",
    "FusionSession": "fusion_jupyter.session",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fusion_jupyter' has no attribute {name!r}")


def missing_extra() -> str | None:
    """The first module of the ``[jupyter]`` extra that cannot be imported, or None."""
    for name in EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext fusion_jupyter``: register the magics with one session for this shell.

    Without the ``[jupyter]`` extra this prints one line saying what to install, not a traceback.
    """
    missing = missing_extra()
    if missing is not None:
        print(f"fusion_jupyter needs the [jupyter] extra ({missing} is not installed): {INSTALL_HINT}", file=sys.stderr)
        return
    from fusion_jupyter.line import help_end_guard
    from fusion_jupyter.magic import FusionMagics

    magics = FusionMagics(shell=ipython)
    ipython.register_magics(magics)
    # Lets `%config FusionMagics.view = "text"` find the instance.
    ipython.configurables.append(magics)
    if help_end_guard not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(help_end_guard)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext``/``%reload_ext``: close the session's engine and connections."""
    magics = ipython.magics_manager.registry.pop("FusionMagics", None)
    if magics is not None:
        magics.session.close()
        if magics in ipython.configurables:
            ipython.configurables.remove(magics)
    from fusion_jupyter.line import help_end_guard

    if help_end_guard in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(help_end_guard)
