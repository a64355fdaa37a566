"""``s3prl-emoaware ems-study``: EMS vs random masking with seeds, folds and paired intervals (see :mod:`s3prl_emoaware.demo.ems_study`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .demo import add_staged_job_arguments

    add_staged_job_arguments(
        parser,
        "ems_study_output",
        "tiny corpora, two seeds, one fold, a few steps (smoke run)",
        "EmsStudyConfig",
        "seeds=[0,1]",
        child_stages=True,
    )


def run(args: argparse.Namespace) -> int:
    from ..demo.ems_study import run_ems_study

    print(run_ems_study(args.out, quick=args.quick, redo=args.redo, overrides=args.override, stage=args.stage), end="")
    return 0
