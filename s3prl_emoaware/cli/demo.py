"""``s3prl-emoaware demo``: the README's main job (see :mod:`s3prl_emoaware.demo.pipeline`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_staged_job_arguments(
    parser: argparse.ArgumentParser,
    default_out: str,
    quick_help: str,
    config_class: str,
    override_example: str,
    child_stages: bool = False,
) -> None:
    """Options shared by the resumable staged jobs (``demo``, ``ser-study``, ``ems-study``);
    ``child_stages``: the job runs stages side by side in child processes (``--stage``)."""
    parser.add_argument("--out", type=Path, default=Path(default_out), help=f"output folder (default: {default_out})")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--redo", nargs="*", default=[], metavar="STAGE", help="re-run these stages even if done")
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a {config_class} field, e.g. -o {override_example}",
    )
    if child_stages:  # what the job's own child processes run (demo/stages.py); not for users
        parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_staged_job_arguments(
        parser, "demo_output", "reduced version (tiny corpora, one fold, few steps)", "DemoConfig", "folds=2"
    )


def run(args: argparse.Namespace) -> int:
    from ..demo.pipeline import run_demo

    print(run_demo(args.out, quick=args.quick, redo=args.redo, overrides=args.override), end="")
    return 0
