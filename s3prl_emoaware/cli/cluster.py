"""``s3prl-emoaware cluster --corpus DIR --encoder CKPT --out DIR [-k K|0]``: intra-speaker clusters
(:func:`s3prl_emoaware.contrastive.run.cluster_corpus`; this module parses and prints).

Writes ``assignments.json`` (utt_id -> cluster, K per speaker, skipped speakers), and where
emotion labels exist ``report.json`` (purity / NMI / ARI per speaker and overall, versus one
global k-means and a random assignment) and ``embeddings.png`` (2-D PCA by speaker and by emotion).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument(
        "--encoder",
        type=Path,
        required=True,
        help="speaker encoder: our checkpoint (train-speaker) or a SpeechBrain ECAPA state dict",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("-k", type=int, default=4, help="clusters per speaker; 0 = choose by silhouette")
    parser.add_argument("--min-utterances", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from ..contrastive.run import cluster_corpus

    result = cluster_corpus(
        args.corpus, args.encoder, args.out, k=args.k, min_utterances=args.min_utterances, seed=args.seed
    )
    for spk, why in result.skipped_speakers.items():
        print(f"skipped speaker {spk}: {why}")
    if result.report is not None:
        print(f"{'method':<22}{'purity':>8}{'NMI':>8}{'ARI':>8}   (within-speaker, vs emotion labels)")
        for method, scores in result.report["overall"].items():
            print(
                f"{method:<22}{scores.get('purity', float('nan')):>8.3f}{scores.get('nmi', float('nan')):>8.3f}"
                f"{scores.get('ari', float('nan')):>8.3f}"
            )
    print(f"{result.assignments}: {result.n_clustered} utterances in {result.n_speakers} speakers")
    return 0
