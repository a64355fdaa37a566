"""The stock runner vs the hidden-state cache: IEMOCAP-layout emotion over 5 folds, end to end.

Usage: python bench/bench_hidden_cache.py [--upstream mockingjay|npc] [--size demo] [--steps 60] [--hidden 256]
[--layers 3]

Three ``s3prl-emoaware run-downstream --all-folds`` runs of the same upstream (Mockingjay or
NPC with ``--layers`` blocks, randomly initialised at the given size: the cost does not
depend on the weights) on one
generated IEMOCAP-layout corpus: the stock path (``--no-hidden-cache``), the cache from
empty (the first fold computes every utterance once, the other folds read it), and the
cache again (a later run on the same audio: nothing is computed). Each is one process with
s3prl's ~10 s import, timed from the outside. Prints wall times, ratios, the 5 fold
accuracies of each (the cache must not change them), peak memory, and the cache's disk use
per hour of audio per layer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure the checkout, not an installed copy


def _timed(cmd, env) -> tuple:
    """(wall seconds, peak RSS in MB of the process tree) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed:\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux: KB; the largest of the tree's reaped processes


def random_upstream_checkpoint(path: Path, upstream: str, hidden: int, layers: int) -> int:
    """Save a randomly initialised Mockingjay or NPC (``layers`` blocks of width ``hidden``) in our
    checkpoint format; return its number of hidden states."""
    from s3prl_emoaware.config import to_dict
    from s3prl_emoaware.features import FbankConfig
    from s3prl_emoaware.models.mockingjay import MockingjayConfig, mockingjay_model
    from s3prl_emoaware.models.npc import NPCConfig, NPCModel

    torch.manual_seed(0)
    if upstream == "mockingjay":
        config = MockingjayConfig(
            input_dim=240,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=max(1, hidden // 64),
            intermediate_size=4 * hidden,
        )
        model, frontend, n_layers = mockingjay_model(config), FbankConfig(delta_order=2, cmvn=True), layers + 1
    else:  # the shipped EMS NPC's kernel and mask at the given width and depth
        config = NPCConfig(
            hidden_size=hidden,
            n_blocks=layers,
            kernel_size=7 + 2 * layers + 2,
            mask_size=7,
            vq_codebook_sizes=[64] * 4,
            vq_code_dims=[hidden // 4] * 4,
        )
        model, frontend, n_layers = NPCModel(config), FbankConfig(window_type="hamming", cmvn=True), 2 * layers + 1
    state = {"model": model.state_dict(), "config": {"model": to_dict(config), "frontend": to_dict(frontend)}}
    torch.save({"format": "s3prl_emoaware", "kind": upstream, **state, "step": 0}, path)
    return n_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="mockingjay", choices=("mockingjay", "npc"))
    parser.add_argument("--size", default="demo", choices=("tiny", "demo"), help="generated corpus size")
    parser.add_argument("--steps", type=int, default=60, help="training steps per fold (dev and test every half)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--keep", help="folder to keep the corpus and runs in (default: a temporary one)")
    args = parser.parse_args()

    from s3prl_emoaware.corpora.synth import synthesize_corpus

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        corpus = work / "iemocap"
        if not corpus.exists():
            synthesize_corpus("iemocap", corpus, seed=0, size=args.size)
        # the utterances the emotion recipe reads: each session's test list (4 classes)
        listed = {
            m["path"]
            for k in range(1, 6)
            for m in json.loads((corpus / f"meta_data/Session{k}/test_meta_data.json").read_text())["meta_data"]
        }
        audio_s = sum(sf.info(str(corpus / p)).duration for p in listed)
        n_utts = len(listed)
        ckpt = work / f"{args.upstream}.ckpt"
        n_layers = random_upstream_checkpoint(ckpt, args.upstream, args.hidden, args.layers)
        half = max(1, args.steps // 2)
        override = (
            f"config.runner.total_steps={args.steps},,config.runner.eval_step={half},,"
            f"config.runner.save_step={half},,config.runner.log_step={half},,"
            "config.runner.gradient_accumulate_steps=1,,config.downstream_expert.datarc.num_workers=0,,"
            f"config.downstream_expert.datarc.train_batch_size={args.batch_size},,"
            f"config.downstream_expert.datarc.eval_batch_size={args.batch_size},,"
            f"config.downstream_expert.datarc.root='{corpus}',,"
            f"config.downstream_expert.datarc.meta_data='{corpus / 'meta_data'}'"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        cache = work / "hidden_cache"
        runs = {
            "stock runner": ["--no-hidden-cache"],
            "cache, empty": ["--hidden-cache", str(cache)],
            "cache, filled": ["--hidden-cache", str(cache)],
        }
        results = {}
        for name, flags in runs.items():
            expdir = work / name.replace(", ", "_").replace(" ", "_")
            cmd = [
                sys.executable,
                "-m",
                "s3prl_emoaware.cli",
                "run-downstream",
                "--all-folds",
                *flags,
                "-m",
                "train",
                "-u",
                f"ems_{args.upstream}_local",
                "-k",
                str(ckpt),
                "-d",
                "emotion",
                "-o",
                override,
                "-p",
                str(expdir),
                "--device",
                "cpu",
            ]
            wall, rss = _timed(cmd, env)
            summary = json.loads((expdir / "all_folds.json").read_text())
            results[name] = (wall, rss, [summary["folds"][f"fold{k}"]["acc"] for k in range(1, 6)])

        entries = list(cache.rglob("*.pt"))
        disk = sum(p.stat().st_size for p in entries)
        hours = audio_s / 3600
        per_hour_layer = disk / hours / n_layers / 1e9
        print(
            f"IEMOCAP-layout emotion, 5 folds x {args.steps} steps (dev+test every {half}), batch {args.batch_size}: "
            f"{n_utts} utterances, {audio_s / 60:.1f} min of audio; {args.upstream} {args.layers}x{args.hidden} "
            f"({n_layers} hidden states), CPU, {torch.get_num_threads()} threads"
        )
        stock = results["stock runner"][0]
        for name, (wall, rss, accs) in results.items():
            print(
                f"  {name:<14}: {wall:7.1f} s  ({stock / wall:5.2f}x)  peak RSS {rss:6.0f} MB  "
                f"fold acc {' '.join(f'{a:.4f}' for a in accs)}  mean {sum(accs) / 5:.4f}"
            )
        same = all(results[n][2] == results["stock runner"][2] for n in results)
        print(f"  fold accuracies identical to the stock runner's: {same}")
        print(
            f"  cache on disk: {len(entries)} entries, {disk / 1e6:.1f} MB = {per_hour_layer:.3f} GB per hour of "
            f"audio per {args.hidden}-wide layer (fp16); the formula 2 B x width x frames/h gives "
            f"{2 * args.hidden * 360000 / 1e9:.3f} at 10 ms, {2 * 768 * 360000 / 1e9:.3f} for a 768-wide layer"
        )
        print(
            "  memory: each runner process keeps the entries it has read and checked, up to "
            "--hidden-cache-memory-gb per cache folder (default 2 GB, LRU; shared by the 10 runs of the batch): "
            "at most the disk size above for this corpus; plus the audio s3prl's dataset decodes "
            f"({audio_s / 3600 * 0.2304:.3f} GB of float32 samples)"
        )


if __name__ == "__main__":
    main()
