"""``s3prl-emoaware intensity --corpus DIR --out CACHE [--model CKPT | --source energy]``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..intensity.alignment import GRIDS
    from ..intensity.extract import SOURCES
    from ..models.strengthnet import PRECISIONS
    from ..utils.audio import DEFAULT_MAX_BAD_FRACTION

    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="cache folder (created, or resumed)")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="strengthnet",
        help="strengthnet (default, needs --model) or energy (model-free arousal proxy)",
    )
    parser.add_argument("--model", type=Path, help="StrengthNet checkpoint (train-strengthnet's strengthnet.ckpt)")
    parser.add_argument(
        "--grid",
        choices=sorted(GRIDS),
        default="fbank-25-10",
        help="frame grid the curves are aligned to (default: the SSL fbank frames)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="what StrengthNet computes in: fp32 (default) or bf16 (convolutions and BiLSTM in bfloat16: "
        "2-3x faster on CPUs with AVX512-BF16/AMX, curves within about 1e-3 of fp32; emulated and slower elsewhere)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-batch", action="store_true", help="one utterance at a time (for comparison)")
    parser.add_argument("--jobs", type=int, default=2, help="decoding/feature worker threads")
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        default=DEFAULT_MAX_BAD_FRACTION,
        help="share of unusable audio files (skipped and listed) above which the run fails "
        f"(default {DEFAULT_MAX_BAD_FRACTION})",
    )


def run(args: argparse.Namespace) -> int:
    from ..intensity.extract import extract_intensities

    counts = extract_intensities(
        args.corpus,
        args.out,
        source=args.source,
        model_path=str(args.model) if args.model else None,
        grid=args.grid,
        batch_size=1 if args.no_batch else args.batch_size,
        n_jobs=args.jobs,
        max_bad_fraction=args.max_bad_fraction,
        precision=args.precision,
    )
    print(
        f"{args.out}: {counts['new']} new, {counts['total']} in cache, {counts['failed']} failed "
        f"(see index.json 'failed')"
    )
    return 0
