"""Pre-training data at scale: peak memory, time to the first optimizer step and steps/s
for a corpus of 1x, 4x and 16x the demo's pre-training size.

A tiny VoxCeleb-layout corpus is generated once (the project's generator) and hard-linked
``copies x size`` times under new speaker ids, so the 16x corpus costs no synthesis. Each
size is pre-trained (``ems_mockingjay_small``, random masking, a few steps) in a child
process; the parent samples the proportional set size (PSS) of the child and its DataLoader
workers (a sum that counts shared pages once) and reads the child's RSS high-water mark
from ``wait4``. Time to the first step runs from the child's launch (interpreter and torch
imports included, the same at every size) to the end of the first ``optimizer.step``.

Usage: python bench/bench_pretrain_scale.py [--sizes 1 4 16] [--copies 10] [--steps 40] [-o training.num_workers=2]
       [--code DIR]  (DIR/s3prl_emoaware instead of this checkout's, e.g. `git archive` of an older commit)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = os.environ.get("BENCH_PRETRAIN_CODE", str(REPO))  # --code: another copy of the package to measure
sys.path.insert(0, CODE)  # measure the checkout, not an installed copy


def replicate(src: Path, dst: Path, copies: int) -> int:
    """Hard-link every ``wav/<speaker>/<video>/<n>.wav`` of ``src`` ``copies`` times under new speaker ids
    (all in the ``dev`` set of ``vox1_meta.csv``); return the number of utterances the reader sees."""
    from s3prl_emoaware.corpora.reader import read_corpus

    speakers = []
    for k in range(copies):
        for wav in sorted(src.glob("wav/id*/*/*.wav")):
            spk, video = wav.parts[-3], wav.parts[-2]
            target = dst / "wav" / f"id{k:04d}{spk[2:]}" / video / wav.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(wav, target)
            speakers.append(target.parts[-3])
    rows = [f"{s}\tSpeaker_{i:05d}\tf\tUSA\tdev\n" for i, s in enumerate(sorted(set(speakers)))]
    (dst / "vox1_meta.csv").write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n" + "".join(rows))
    return len(read_corpus(dst))


def _tree_pss_kb(root_pid: int) -> int:
    """PSS (kB) of ``root_pid`` and all its descendants."""
    children: dict = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def measure(corpus: Path, out: Path, steps: int, overrides) -> dict:
    stamps = out / "stamps.json"
    cmd = [sys.executable, __file__, "--child", str(corpus), str(out), str(steps), *overrides]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=CODE, BENCH_PRETRAIN_CODE=CODE)
    launched = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_pss_kb(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"pre-training failed on {corpus}:\n{err[-3000:]}")
    t = json.loads(stamps.read_text())
    return {
        "first_step_s": t[0] - launched,
        "steps_per_s": (len(t) - 1) / (t[-1] - t[0]),
        "pss_mb": peak[0] / 1024,
        "maxrss_mb": usage.ru_maxrss / 1024,
    }


def child(corpus: str, out: str, steps: int, overrides) -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from s3prl_emoaware.config import load_config, shipped_config
    from s3prl_emoaware.pretraining.run import pretrain
    from s3prl_emoaware.pretraining.trainer import PretrainRecipe

    stamps = []
    register_optimizer_step_post_hook(lambda *_: stamps.append(time.time()))
    recipe = load_config(
        PretrainRecipe,
        shipped_config("upstream_configs", "ems_mockingjay_small"),
        [
            "masking.strategy=random",
            f"training.total_steps={steps}",
            "training.save_every=100000",
            "training.log_every=100000",
            *overrides,
        ],
    )
    pretrain(recipe, corpus, out, None)
    Path(out, "stamps.json").write_text(json.dumps(stamps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--copies",
        type=int,
        default=10,
        help="tiny corpora (24 utterances) per 1x: 10 = 240, the demo's pre-training size",
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument(
        "-o", "--override", action="append", default=[], help="recipe override, e.g. training.num_workers=2"
    )
    parser.add_argument("--code", help="folder holding another s3prl_emoaware to measure (e.g. an older commit's)")
    parser.add_argument("--child", nargs=3, metavar=("CORPUS", "OUT", "STEPS"), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]), rest)
    if args.code:
        os.environ["BENCH_PRETRAIN_CODE"] = args.code
        os.execv(
            sys.executable, [sys.executable, __file__, *[a for a in sys.argv[1:] if a not in ("--code", args.code)]]
        )
    from s3prl_emoaware.corpora.synth import synthesize_corpus

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize_corpus("voxceleb", tmp / "tiny", seed=0, size="tiny")
        print(f"{'size':>5} {'utts':>6} {'peak PSS MB':>12} {'max RSS MB':>11} {'first step s':>13} {'steps/s':>8}")
        for size in args.sizes:
            corpus = tmp / f"x{size}"
            n = replicate(tmp / "tiny", corpus, args.copies * size)
            r = measure(corpus, tmp / f"out{size}", args.steps, args.override)
            print(
                f"{size:>4}x {n:>6} {r['pss_mb']:>12.0f} {r['maxrss_mb']:>11.0f} {r['first_step_s']:>13.2f} "
                f"{r['steps_per_s']:>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
