"""Intensity extraction speed (x real time: seconds of audio per wall-clock second), reference vs fast path.

Usage: python bench/bench_intensity.py [--corpus DIR] [--model CKPT] [--repeats 3] [--threads 2]

Without --model, randomly initialised StrengthNets of two sizes are timed (the cost does not
depend on the weights): the shipped one (upstream_configs/strengthnet.yaml, ~1.9M parameters)
and the demo's strengthnet_small. For each, in one run: the reference path (the model's training
forward over the same length-sorted batches: both branches, autograd-style masks; the pre-issue-14
extraction, whose packed BiLSTMs were replaced by the unpacked pass in 46b5964, so the speed-up
column is lower than the one measured before it), the fast path (StrengthNet.frame_strength), the largest difference between their
curves, the model alone (frame_strength over the same batches of ready mels: the floor the
pipeline's decoding, features and cache writes sit on), and the energy proxy (--source energy).
The fast path is timed twice: in fp32 (the reference's curves) and with ``precision="bf16"``
(convolutions and BiLSTM in bfloat16: 3x faster where the CPU has bf16 matrix units; the curve
difference printed is against the fp32 reference, measured on random weights).
The corpus is the generator's tiny IEMOCAP-layout corpus unless --corpus is given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure the checkout, not an installed copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus")
    parser.add_argument("--model", help="a StrengthNet checkpoint (default: the two random-weight sizes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2: two cores)")
    parser.add_argument(
        "--copies",
        type=int,
        default=8,
        help="extract each clip this many times, under ids of its own (default 8: 21 min of audio from the tiny "
        "corpus; the run's fixed costs, a few hundredths of a second, then weigh as little as on a real corpus)",
    )
    args = parser.parse_args()
    before = os.getloadavg()[0]

    import logging

    logging.disable(logging.WARNING)
    from s3prl_emoaware.config import load_config, shipped_config, to_dict
    from s3prl_emoaware.corpora.reader import read_corpus
    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.intensity.alignment import STRENGTHNET_GRID
    from s3prl_emoaware.intensity.cache import IntensityCache
    from s3prl_emoaware.intensity.extract import _batches, extract_intensities
    from s3prl_emoaware.intensity.strengthnet import MelFrontend, strengthnet
    from s3prl_emoaware.intensity.train import StrengthNetRecipe, load_strengthnet
    from s3prl_emoaware.utils.audio import read_audio
    from s3prl_emoaware.utils.processes import torch_threads

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = Path(args.corpus) if args.corpus else synthesize_corpus("iemocap", tmp / "corpus", size="tiny")
        clips = read_corpus(corpus)
        utts = [replace(u, utt_id=f"{u.utt_id}~{k}") for k in range(args.copies) for u in clips]
        audio = args.copies * sum(sf.info(str(u.path)).duration for u in clips)
        models = {}
        if args.model:
            models[Path(args.model).name] = Path(args.model)
        else:
            for name in ("strengthnet", "strengthnet_small"):
                config = load_config(StrengthNetRecipe, shipped_config("upstream_configs", name)).model
                models[name] = tmp / f"{name}.ckpt"
                torch.save({"model": strengthnet(config).state_dict(), "config": to_dict(config)}, models[name])
        print(
            f"intensity extraction over {len(utts)} clips ({args.copies} x {len(clips)}, {audio:.0f} s of audio), {args.threads} torch threads, "
            f"2 decoding threads, batch {args.batch_size}, median of {args.repeats} (x real time):"
        )
        runs = 0

        def timed(**kwargs) -> tuple:
            nonlocal runs
            runs += 1
            out = tmp / f"cache{runs}"
            start = time.perf_counter()
            extract_intensities(
                corpus, out, utterances=utts, batch_size=args.batch_size, threads=args.threads, **kwargs
            )
            return time.perf_counter() - start, IntensityCache(out)

        def model_alone(ckpt, precision: str) -> float:
            """Median seconds of frame_strength alone over the extraction's batches, mels computed beforehand."""
            model = load_strengthnet(str(ckpt)).to(memory_format=torch.channels_last)
            frontend = MelFrontend(model.config.n_mels, model.config.log_mel)
            with torch.inference_mode():
                batches = [
                    [frontend(torch.from_numpy(read_audio(u.path))[None])[0] for u in batch]
                    for batch in _batches(utts, args.batch_size)
                ]
            padded = [torch.nn.utils.rnn.pad_sequence(batch, batch_first=True) for batch in batches]
            lengths = [torch.tensor([m.shape[0] for m in batch]) for batch in batches]
            times = []
            with torch_threads(args.threads):
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    for mels, n in zip(padded, lengths):
                        model.frame_strength(mels, n, precision)
                    times.append(time.perf_counter() - start)
            return statistics.median(times)

        paths = {"reference": {"reference": True}, "fast": {}, "fast bf16": {"precision": "bf16"}}
        for name, ckpt in models.items():
            times = {path: [] for path in paths}
            caches = {}
            for _ in range(args.repeats):
                for path, options in paths.items():  # interleaved: same load
                    t, caches[path] = timed(model_path=str(ckpt), **options)
                    times[path].append(t)
            diff = {
                path: max(
                    float(np.abs(caches["reference"].get(u) - caches[path].get(u)).max())
                    for u in caches["reference"].items
                )
                for path in ("fast", "fast bf16")
            }
            ref, fast, low = (statistics.median(times[k]) for k in paths)
            print(
                f"  {name:<18} reference {audio / ref:5.0f}x   fast {audio / fast:5.0f}x (max |curve difference| "
                f"{diff['fast']:.0e}, model alone {audio / model_alone(ckpt, 'fp32'):5.0f}x)   fast bf16 "
                f"{audio / low:5.0f}x ({diff['fast bf16']:.0e}, model alone {audio / model_alone(ckpt, 'bf16'):5.0f}x)"
            )
            print(  # the later runs find oneDNN's kernels compiled for their batch shapes; a new corpus pays once
                f"  {'':<18} first run: reference {audio / times['reference'][0]:5.0f}x   fast "
                f"{audio / times['fast'][0]:5.0f}x   fast bf16 {audio / times['fast bf16'][0]:5.0f}x"
            )
        energy = statistics.median(timed(source="energy")[0] for _ in range(args.repeats))
        print(f"  {'energy proxy':<18} {audio / energy:6.0f}x ({energy:5.2f} s)")
        peak = matmul_peak(args.threads)
        print(f"fp32 matrix multiply on these cores: {peak:.0f} GFLOP/s ({args.threads} threads, 2048^3); so at most:")
        for name, ckpt in models.items():
            flops = (
                strengthnet_flops(load_strengthnet(str(ckpt)).config)
                * STRENGTHNET_GRID.sample_rate
                / STRENGTHNET_GRID.hop
            )
            print(f"  {name:<18} {flops / 1e9:5.2f} GFLOP per second of audio -> {peak * 1e9 / flops:6.0f}x")
        busy = " (other work was running: the figures are low)" if before > 0.5 else ""
        # after: the run's own threads (model, decoding, cache writes) count too, so it says little alone
        print(f"load average before the run: {before:.1f}{busy}, after: {os.getloadavg()[0]:.1f}")


def strengthnet_flops(config) -> float:
    """Multiply-adds x 2 of one StrengthNet frame, inference (dense, convolutions, strength BiLSTM and head)."""
    flops, freq, cin = 2 * config.n_mels * config.dense_dim, config.dense_dim, 1
    for cout in config.channels:
        strided = (freq - 1) // 3 + 1
        flops += 2 * 9 * freq * (cin * cout + cout * cout) + 2 * 9 * strided * cout * cout
        freq, cin = strided, cout
    lstm = 2 * 2 * 4 * config.lstm_dim * (cin * freq + config.lstm_dim)  # both directions
    return flops + lstm + 2 * (2 * config.lstm_dim * config.hidden_dim + config.hidden_dim)


def matmul_peak(threads: int) -> float:
    """GFLOP/s of a 2048 x 2048 fp32 matrix product with ``threads`` torch threads (best of 5)."""
    from s3prl_emoaware.utils.processes import torch_threads

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = float("inf")
    with torch_threads(threads):
        a @ b
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


if __name__ == "__main__":
    main()
