"""Mockingjay benchmarks, measured in one run on this machine:

1. hidden-state extraction throughput of our ``ems_mockingjay_local`` versus s3prl's own
   ``mockingjay_local`` on the same checkpoint (BASE size unless --hidden/--layers say
   otherwise), in seconds of audio per wall-clock second; repetitions are interleaved so
   both see the same machine load;
2. pre-training step time with EMS versus random masking (same model, data, seed).

Usage: python bench/bench_mockingjay.py [--corpus DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure the checkout, not an installed copy


def _upstreams(tmp: Path, hidden: int, layers: int, heads: int):
    import s3prl_emoaware
    from s3prl_emoaware.config import to_dict
    from s3prl_emoaware.features import FbankConfig
    from s3prl_emoaware.models.mockingjay import MockingjayConfig, mockingjay_model
    from s3prl_emoaware.s3prl_adapters.mockingjay_interop import to_s3prl_checkpoint

    s3prl_emoaware.register()
    import s3prl.hub

    cfg = MockingjayConfig(hidden_size=hidden, num_layers=layers, num_heads=heads, intermediate_size=4 * hidden)
    fbank = FbankConfig(delta_order=2, cmvn=True)
    model = mockingjay_model(cfg)
    ours, theirs = tmp / "ours.ckpt", tmp / "s3prl.ckpt"
    torch.save(
        {
            "format": "s3prl_emoaware",
            "kind": "mockingjay",
            "model": model.state_dict(),
            "config": {"model": to_dict(cfg), "frontend": to_dict(fbank)},
            "step": 0,
        },
        ours,
    )
    torch.save(to_s3prl_checkpoint(model.state_dict(), cfg, fbank), theirs)
    return s3prl.hub.ems_mockingjay_local(ckpt=str(ours)).eval(), s3prl.hub.mockingjay_local(ckpt=str(theirs)).eval()


def _time(upstream, wavs) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        upstream(wavs)
    return time.perf_counter() - start


def bench_extraction(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = _upstreams(Path(tmp), args.hidden, args.layers, args.heads)
        g = torch.Generator().manual_seed(0)
        wavs = [torch.randn(int(16000 * s), generator=g) * 0.1 for s in (3.1, 4.7, 5.5, 6.2, 3.9, 7.4, 2.6, 5.0)]
        audio_seconds = sum(len(w) for w in wavs) / 16000
        _time(ours, wavs), _time(theirs, wavs)  # warm-up
        t_ours, t_theirs = [], []
        for _ in range(args.repeats):
            t_ours.append(_time(ours, wavs))
            t_theirs.append(_time(theirs, wavs))
        a, b = statistics.median(t_ours), statistics.median(t_theirs)
        print(
            f"extraction, {len(wavs)} clips = {audio_seconds:.1f} s audio, Mockingjay {args.layers}x{args.hidden}, "
            f"{torch.get_num_threads()} threads, median of {args.repeats}:"
        )
        print(f"  s3prl mockingjay_local : {audio_seconds / b:8.1f} s audio / s  ({b * 1000:.0f} ms per batch)")
        print(f"  ems_mockingjay_local   : {audio_seconds / a:8.1f} s audio / s  ({a * 1000:.0f} ms per batch)")
        print(f"  speed-up (ours / s3prl): {b / a:.2f}x")


def bench_masking(args) -> None:
    from s3prl_emoaware.config import load_config, shipped_config
    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.intensity.extract import extract_intensities
    from s3prl_emoaware.pretraining.run import pretrain
    from s3prl_emoaware.pretraining.trainer import PretrainRecipe

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = Path(args.corpus) if args.corpus else synthesize_corpus("iemocap", tmp / "corpus", size="tiny")
        extract_intensities(corpus, tmp / "cache", source="energy")
        steps = args.steps
        times = {"random": [], "ems": []}
        for r in range(args.repeats):
            for strategy in ("random", "ems"):
                recipe = load_config(
                    PretrainRecipe,
                    shipped_config("upstream_configs", "ems_mockingjay_small"),
                    [f"masking.strategy={strategy}", f"training.total_steps={steps}", f"training.save_every={steps}"],
                )
                start = time.perf_counter()
                pretrain(recipe, corpus, tmp / f"{strategy}{r}", str(tmp / "cache") if strategy == "ems" else None)
                times[strategy].append(time.perf_counter() - start)
        rnd, ems = statistics.median(times["random"]), statistics.median(times["ems"])
        print(f"pre-training ({steps} steps incl. feature loading, ems_mockingjay_small, median of {args.repeats}):")
        print(f"  random masking: {rnd / steps * 1000:.1f} ms/step")
        print(f"  EMS masking   : {ems / steps * 1000:.1f} ms/step")
        print(f"  EMS overhead  : {100 * (ems - rnd) / rnd:+.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--corpus", help="IEMOCAP-layout corpus for the masking benchmark (default: tiny synthetic)")
    parser.add_argument("--skip", choices=["extraction", "masking"], action="append", default=[])
    args = parser.parse_args()
    if "extraction" not in args.skip:
        bench_extraction(args)
    if "masking" not in args.skip:
        bench_masking(args)


if __name__ == "__main__":
    main()
