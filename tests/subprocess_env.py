"""Environment for tests that start a child Python (stock runner, CLI, torchrun).

The child resolves ``s3prl_emoaware`` through ``PYTHONPATH`` = this checkout, so it runs
the code under test; the installed distribution contributes the autoload ``.pth`` only.
With ``S3PRL_EMOAWARE_TEST_INSTALLED=1`` (the second pass of ``scripts/run_tests.sh``) the checkout is left off
the path, so parent and child run the installed package: a module or data file missing from the
distribution fails there although the checkout has it.
"""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TEST_INSTALLED = os.environ.get("S3PRL_EMOAWARE_TEST_INSTALLED") == "1"


def child_env(**extra: str) -> dict:
    env = os.environ.copy()
    if not TEST_INSTALLED:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env
