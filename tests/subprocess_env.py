"""Environment for tests that start a child Python (stock runner, CLI, torchrun).

The child resolves ``s3prl_emoaware`` through ``PYTHONPATH`` = this checkout, so it runs
the code under test; the installed distribution contributes the autoload ``.pth`` only.
With ``S3PRL_EMOAWARE_TEST_INSTALLED=1`` (the second pass of ``scripts/run_tests.sh``) the checkout is left off
the path, so parent and child run the installed package: a module or data file missing from the
distribution fails there although the checkout has it.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

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


@contextlib.contextmanager
def child_torch_threads() -> Iterator[int]:
    """This process's torch threads set to a :func:`child_env` child's (``OMP_NUM_THREADS``) for the block:
    a reference run compared bit for bit with a child's must split its float sums the same way (with
    ``OMP_NUM_THREADS`` unset the children ran on one thread and this process on every core, and a resumed
    child's weights differed from the in-process reference's)."""
    from s3prl_emoaware.utils.processes import torch_threads

    threads = int(child_env()["OMP_NUM_THREADS"])
    with torch_threads(threads):
        yield threads


def stock_runner(*args, cwd, env: Optional[dict] = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m s3prl.run_downstream ARGS`` in a child (the stock runner, as users start it); asserts exit 0."""
    return _run_module("s3prl.run_downstream", args, cwd, env, timeout)


def our_cli(*args, cwd, env: Optional[dict] = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m s3prl_emoaware.cli ARGS`` in a child; asserts exit 0."""
    return _run_module("s3prl_emoaware.cli", args, cwd, env, timeout)


def _run_module(module: str, args, cwd, env: Optional[dict], timeout: int) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [PYTHON, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        env=env if env is not None else child_env(),
        cwd=cwd,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def stock_train(upstream: str, downstream: str, override: str, expdir, cwd, env: Optional[dict] = None):
    """Train ``downstream`` on ``upstream`` with our shipped config and ``-o override`` into ``expdir``."""
    from s3prl_emoaware.config import shipped_config

    config = shipped_config("downstream_configs", downstream)
    return stock_runner("-m", "train", "-u", upstream, "-d", downstream, "-c", config, "-o", override,
                        "-p", expdir, "--device", "cpu", cwd=cwd, env=env)  # fmt: skip


def stock_evaluate_test(expdir, cwd, env: Optional[dict] = None):
    """Evaluate ``expdir``'s best checkpoint (dev-best, else the last) on the test split."""
    from s3prl_emoaware.s3prl_adapters.launch import best_checkpoint

    return stock_runner("-m", "evaluate", "-e", best_checkpoint(expdir), "-t", "test", "--device", "cpu",
                        cwd=cwd, env=env)  # fmt: skip
