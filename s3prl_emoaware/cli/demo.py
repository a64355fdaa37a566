"""``s3prl-emoaware demo``: the README's main job (see :mod:`s3prl_emoaware.demo.pipeline`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default: demo_output)")
    parser.add_argument("--quick", action="store_true", help="reduced version (tiny corpora, one fold, few steps)")
    parser.add_argument("--redo", nargs="*", default=[], metavar="STAGE", help="re-run these stages even if done")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="override a DemoConfig field, e.g. -o folds=2")


def run(args: argparse.Namespace) -> int:
    from ..demo.pipeline import run_demo

    print(run_demo(args.out, quick=args.quick, redo=args.redo, overrides=args.override), end="")
    return 0
