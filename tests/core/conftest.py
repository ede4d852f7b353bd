"""Import paths for the ppo_core tests, whatever pytest's import mode.

* The helper modules next to the tests (``seed_reference``, ``numpy_reference``,
  ``core_inputs``) are imported by name; ``--import-mode=importlib`` does not put this folder
  on ``sys.path``, so it is added here.
* ``import ppo_core`` must be this checkout's package: ``.venv/bin/pytest`` does not put the
  repository root on ``sys.path``, and an editable install made before
  ``ppo_core/__init__.py`` existed resolves ``ppo_core`` as an empty namespace package.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (str(HERE.parents[1]), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)
