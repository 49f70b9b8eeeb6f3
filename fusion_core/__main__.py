"""``python -m fusion_core`` is the ``fusion`` command."""

from __future__ import annotations

import sys

from fusion_core.cli.main import main

sys.exit(main())
