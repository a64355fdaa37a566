"""``s3prl-emoaware prepare-iemocap IEMOCAP_ROOT OUT_META``: s3prl's emotion meta_data from the raw layout."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="IEMOCAP folder with Session1..Session5")
    parser.add_argument("out_meta", type=Path, help="where meta_data/SessionN/{train,test}_meta_data.json go")


def run(args: argparse.Namespace) -> int:
    from ..corpora.iemocap import prepare_iemocap_meta

    counts = prepare_iemocap_meta(args.root, args.out_meta)
    for session, n in counts.items():
        print(f"{session}: {n} utterances (neu/hap+exc/ang/sad)")
    return 0
