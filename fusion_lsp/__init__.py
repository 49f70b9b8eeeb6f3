"""fusion-lsp: fused code review and fused completion for any LSP editor.

A pygls language server over :mod:`fusion_core`. Run it as ``fusion-lsp`` or
``python -m fusion_lsp`` (stdio; ``--tcp HOST:PORT`` for a socket). It only
turns the engine's event stream into LSP messages; the review prompt, the
merging of findings, secret redaction and completion ranking live in the core
(:mod:`fusion_core.review`, :mod:`fusion_core.redaction`,
:mod:`fusion_core.completion`).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
