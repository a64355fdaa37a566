"""``s3prl-emoaware ser-study``: few-label SER of the contrastive ECAPA upstream (see :mod:`s3prl_emoaware.demo.ser_study`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .demo import add_staged_job_arguments

    add_staged_job_arguments(
        parser,
        "ser_study_output",
        "tiny corpora and a few steps (smoke run)",
        "SerStudyConfig",
        "splits=3",
        child_stages=True,
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="NAME",
        help="run demo/configs/ser_study_NAME.yaml instead, e.g. --config knob (the multi-task "
        "knobs on corpora generated with another seed)",
    )


def run(args: argparse.Namespace) -> int:
    from ..demo.ser_study import run_ser_study

    print(
        run_ser_study(
            args.out, quick=args.quick, redo=args.redo, overrides=args.override, config=args.config, stage=args.stage
        ),
        end="",
    )
    return 0
