"""``s3prl-emoaware cluster --corpus DIR --encoder CKPT --out DIR [-k K|0]``: intra-speaker clusters.

Writes ``assignments.json`` (utt_id -> cluster, K per speaker, skipped speakers), and where
emotion labels exist ``report.json`` (purity / NMI / ARI per speaker and overall, versus one
global k-means and a random assignment) and ``embeddings.png`` (2-D PCA by speaker and by emotion).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True,
                        help="speaker encoder: our checkpoint (train-speaker) or a SpeechBrain ECAPA state dict")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("-k", type=int, default=4, help="clusters per speaker; 0 = choose by silhouette")
    parser.add_argument("--min-utterances", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from ..contrastive.clustering import ClusteringConfig, cluster_per_speaker, cluster_report, plot_embeddings
    from ..contrastive.embed import embed_corpus
    from ..utils.atomic import atomic_write_json, ensure_writable_dir

    out = ensure_writable_dir(args.out)
    utts, emb, skipped_audio = embed_corpus(args.corpus, args.encoder)
    cfg = ClusteringConfig(k=args.k, min_utterances=args.min_utterances, seed=args.seed)
    speakers = [u.speaker for u in utts]
    clusters, k_per_speaker, skipped = cluster_per_speaker(emb, speakers, cfg)
    atomic_write_json(out / "assignments.json", {
        "clusters": {u.utt_id: int(c) for u, c in zip(utts, clusters) if c >= 0},
        "speakers": {u.utt_id: u.speaker for u in utts}, "k_per_speaker": k_per_speaker,
        "skipped_speakers": skipped, "skipped_audio": skipped_audio})
    for spk, why in skipped.items():
        print(f"skipped speaker {spk}: {why}")
    emotions = [u.emotion for u in utts]
    if any(e is not None for e in emotions):
        report = cluster_report(emb, speakers, emotions, clusters, k_per_speaker, args.seed)
        atomic_write_json(out / "report.json", report)
        plot_embeddings(emb, speakers, emotions, out / "embeddings.png", title=f"{args.encoder.name} on {args.corpus.name}")
        print(f"{'method':<22}{'purity':>8}{'NMI':>8}{'ARI':>8}   (within-speaker, vs emotion labels)")
        for method, scores in report["overall"].items():
            print(f"{method:<22}{scores.get('purity', float('nan')):>8.3f}{scores.get('nmi', float('nan')):>8.3f}"
                  f"{scores.get('ari', float('nan')):>8.3f}")
    print(f"{out / 'assignments.json'}: {int((clusters >= 0).sum())} utterances in {len(k_per_speaker)} speakers")
    return 0
