"""The names of the server's ``workspace/executeCommand`` commands, in a module that imports nothing.

The code actions offer the commands and the features register them; both import
the names from here, so no feature module has to import another (or the server)
to learn a command's name.
"""

from __future__ import annotations

REVIEW_COMMAND = "fusion.review"
EXPLAIN_COMMAND = "fusion.explain"
APPLY_FIX_COMMAND = "fusion.applyFix"
STATUS_COMMAND = "fusion.status"

__all__ = ["APPLY_FIX_COMMAND", "EXPLAIN_COMMAND", "REVIEW_COMMAND", "STATUS_COMMAND"]
