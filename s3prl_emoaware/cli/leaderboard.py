"""``s3prl-emoaware leaderboard RESULT_DIR... --out DIR``: one table from many runner experiments."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.errors import UserFacingError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "result_dirs",
        nargs="+",
        type=Path,
        help="folders searched recursively for s3prl runner experiments (args_*.yaml)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("leaderboard"),
        help="where leaderboard.{md,csv,json,png} are written (default: ./leaderboard)",
    )


def run(args: argparse.Namespace) -> int:
    from .. import leaderboard

    results = leaderboard.collect(args.result_dirs)
    if not results:
        raise UserFacingError(
            f"no scored experiments under {', '.join(map(str, args.result_dirs))}: expected runner folders "
            "with args_*.yaml and test outputs (run -m evaluate -t test, or training with a test eval_dataloader)"
        )
    table = leaderboard.aggregate(results)
    paths = leaderboard.write_all(table, args.out)
    print(leaderboard.to_markdown(table), end="")
    print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0
