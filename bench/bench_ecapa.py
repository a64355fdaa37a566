"""ECAPA benchmarks: embedding extraction throughput and per-speaker clustering time as the corpus grows.

The corpus is the tiny generated IEMOCAP-layout corpus replicated 1x, 4x and 16x (same
speakers, more utterances each), so the clustering problem grows as a real corpus would.
Usage: python bench/bench_ecapa.py [--channels 512]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure the checkout, not an installed copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()

    from s3prl_emoaware.config import to_dict
    from s3prl_emoaware.contrastive.clustering import ClusteringConfig, cluster_per_speaker
    from s3prl_emoaware.contrastive.embed import embed_corpus
    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.features import FbankConfig
    from s3prl_emoaware.models.ecapa import EcapaConfig, EcapaTdnn

    c = args.channels
    cfg = EcapaConfig(channels=[c, c, c, c, 3 * c])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = synthesize_corpus("iemocap", tmp / "corpus", size="tiny")
        ckpt = tmp / "ecapa.ckpt"
        torch.save({"format": "s3prl_emoaware", "kind": "ecapa_speaker",
                    "model": {f"encoder.{k}": v for k, v in EcapaTdnn(cfg).state_dict().items()},
                    "config": {"model": to_dict(cfg), "frontend": to_dict(FbankConfig(window_type="hamming"))}}, ckpt)
        start = time.perf_counter()
        utts, emb, _ = embed_corpus(corpus, ckpt)
        elapsed = time.perf_counter() - start
        import soundfile as sf

        audio = sum(sf.info(str(u.path)).duration for u in utts)
        print(f"ECAPA {c} channels, {torch.get_num_threads()} threads: {len(utts)} clips ({audio:.0f} s audio) "
              f"embedded at {audio / elapsed:.1f} s audio / s (features included)")
        speakers = [u.speaker for u in utts]
        rng = np.random.default_rng(0)
        for scale in args.scales:
            x = np.concatenate([emb + rng.normal(scale=0.01, size=emb.shape) for _ in range(scale)])
            spk = speakers * scale
            for k, name in ((4, "K=4"), (0, "K by silhouette")):
                start = time.perf_counter()
                cluster_per_speaker(x, spk, ClusteringConfig(k=k, min_utterances=4))
                print(f"  clustering {scale:>2}x ({len(x):>5} utterances, {len(set(spk))} speakers), {name:<16}: "
                      f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
