"""Environment for tests that start a child Python (stock runner, CLI, torchrun).

The child resolves ``s3prl_emoaware`` through ``PYTHONPATH`` = this checkout, so it runs
the code under test; the installed distribution contributes the autoload ``.pth`` only.
"""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def child_env(**extra: str) -> dict:
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env
