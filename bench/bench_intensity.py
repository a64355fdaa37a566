"""Intensity extraction speed: seconds of audio processed per wall-clock second, batching on and off.

Usage: python bench/bench_intensity.py [--corpus DIR] [--model CKPT] [--repeats 3]
(without --model a randomly initialised StrengthNet of the shipped size is timed: the
cost does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure the checkout, not an installed copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus")
    parser.add_argument("--model")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from s3prl_emoaware.config import to_dict
    from s3prl_emoaware.corpora.reader import read_corpus
    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.intensity.extract import extract_intensities
    from s3prl_emoaware.intensity.strengthnet import StrengthNetConfig, strengthnet

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = Path(args.corpus) if args.corpus else synthesize_corpus("iemocap", tmp / "corpus", size="tiny")
        model = args.model
        if model is None:
            model = tmp / "sn.ckpt"
            torch.save({"model": strengthnet().state_dict(), "config": to_dict(StrengthNetConfig())}, model)
        utts = read_corpus(corpus)
        audio = sum(sf.info(str(u.path)).duration for u in utts)
        results = {}
        for r in range(args.repeats):
            for name, batch in (("batched", args.batch_size), ("one by one", 1)):
                start = time.perf_counter()
                extract_intensities(corpus, tmp / f"cache_{name}_{r}", model_path=str(model), batch_size=batch)
                results.setdefault(name, []).append(time.perf_counter() - start)
        print(f"StrengthNet extraction over {len(utts)} clips ({audio:.0f} s of audio), "
              f"{torch.get_num_threads()} threads, median of {args.repeats}:")
        for name, times in results.items():
            t = statistics.median(times)
            print(f"  {name:<11}: {audio / t:7.1f} s audio / s  ({t:.2f} s)")
        print(f"  batching speed-up: {statistics.median(results['one by one']) / statistics.median(results['batched']):.2f}x")


if __name__ == "__main__":
    main()
