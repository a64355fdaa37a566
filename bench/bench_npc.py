"""NPC benchmarks, in one run on this machine:

1. hidden-state extraction throughput of our ``ems_npc_local`` versus s3prl's ``npc_local`` on
   the same checkpoint (paper sizes unless --hidden says otherwise), interleaved repetitions;
2. pre-training step time of the EMS variants versus the plain NPC objective.

Usage: python bench/bench_npc.py [--repeats 5]
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


def bench_extraction(args) -> None:
    import s3prl_emoaware
    from s3prl_emoaware.config import to_dict
    from s3prl_emoaware.features import FbankConfig
    from s3prl_emoaware.models.npc import NPCConfig, NPCModel
    from s3prl_emoaware.s3prl_adapters.npc_interop import to_s3prl_npc

    s3prl_emoaware.register()
    import s3prl.hub

    cfg = NPCConfig(hidden_size=args.hidden, kernel_size=17, mask_size=7)
    fbank = FbankConfig(window_type="hamming", cmvn=True)
    model = NPCModel(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "ours.ckpt", Path(tmp) / "s3prl.ckpt"
        torch.save(
            {
                "format": "s3prl_emoaware",
                "kind": "npc",
                "model": model.state_dict(),
                "config": {"model": to_dict(cfg), "frontend": to_dict(fbank)},
            },
            ours,
        )
        torch.save(to_s3prl_npc(model.state_dict(), cfg, fbank), theirs)
        a, b = s3prl.hub.ems_npc_local(ckpt=str(ours)).eval(), s3prl.hub.npc_local(ckpt=str(theirs)).eval()
    g = torch.Generator().manual_seed(0)
    wavs = [torch.randn(int(16000 * s), generator=g) * 0.1 for s in (3.1, 4.7, 5.5, 6.2, 3.9, 7.4, 2.6, 5.0)]
    seconds = sum(len(w) for w in wavs) / 16000

    def timed(up):
        start = time.perf_counter()
        with torch.no_grad():
            up(wavs)
        return time.perf_counter() - start

    timed(a), timed(b)
    ta, tb = [], []
    for _ in range(args.repeats):
        ta.append(timed(a))
        tb.append(timed(b))
    ta, tb = statistics.median(ta), statistics.median(tb)
    print(
        f"extraction, {len(wavs)} clips = {seconds:.1f} s audio, NPC 4x{args.hidden}, {torch.get_num_threads()} threads:"
    )
    print(f"  s3prl npc_local : {seconds / tb:8.1f} s audio / s")
    print(f"  ems_npc_local   : {seconds / ta:8.1f} s audio / s")
    print(f"  speed-up (ours / s3prl): {tb / ta:.2f}x")


def bench_variants(args) -> None:
    from s3prl_emoaware.config import load_config, shipped_config
    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.intensity.extract import extract_intensities
    from s3prl_emoaware.pretraining.run import pretrain
    from s3prl_emoaware.pretraining.trainer import PretrainRecipe

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = synthesize_corpus("iemocap", tmp / "corpus", size="tiny")
        extract_intensities(corpus, tmp / "cache", source="energy")
        times = {}
        for r in range(args.repeats):
            for variant in ("none", "input_mask", "loss_weight", "both"):
                recipe = load_config(
                    PretrainRecipe,
                    shipped_config("upstream_configs", "ems_npc_small"),
                    [
                        f"objective.variant={variant}",
                        f"training.total_steps={args.steps}",
                        f"training.save_every={args.steps}",
                    ],
                )
                start = time.perf_counter()
                pretrain(recipe, corpus, tmp / f"{variant}{r}", str(tmp / "cache"))
                times.setdefault(variant, []).append(time.perf_counter() - start)
        base = statistics.median(times["none"])
        print(f"pre-training ({args.steps} steps incl. feature loading, ems_npc_small, median of {args.repeats}):")
        for variant, t in times.items():
            t = statistics.median(t)
            print(f"  {variant:<11}: {t / args.steps * 1000:7.1f} ms/step  ({100 * (t - base) / base:+.1f}% vs none)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--skip", choices=["extraction", "variants"], action="append", default=[])
    args = parser.parse_args()
    if "extraction" not in args.skip:
        bench_extraction(args)
    if "variants" not in args.skip:
        bench_variants(args)


if __name__ == "__main__":
    main()
