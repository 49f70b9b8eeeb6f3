"""``python -m fusion_cli`` is the ``fusion`` command."""

from __future__ import annotations

import sys

from fusion_cli.main import main

sys.exit(main())
