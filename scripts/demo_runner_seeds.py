"""Re-run one SUPERB task of a finished demo with other runner seeds (same checkpoints, the demo's
hidden-state cache), to tell a method's effect from the downstream's own seed.

    python scripts/demo_runner_seeds.py demo_output --task phoneme_recognition --seeds 1 2 --out pr_seeds

Writes one runner experiment per (upstream, seed) under --out and prints the test metric of each next to the
demo's own run (seed 1337). Pass --labels to restrict the upstreams (default: every one the demo ran). A task
whose learning rate the demo searched (``lr_search``) runs every candidate rate per seed, and the one with the
best dev score is kept, as in the demo; the printed metric is the kept run's, with its folder. ``--override
KEY=VALUE ...`` appends runner overrides to every run (after the demo's own, so they win), e.g.
``--override config.runner.total_steps=1000``.
"""

import argparse
import json
from pathlib import Path

from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenCacheConfig
from s3prl_emoaware.s3prl_adapters.runner import RUN_DONE_FILE, evaluate_best_step, launch_batch


def task_steps(demo_out: Path, label: str, task: str, seeds, out: Path, overrides=()):
    """The demo's training argv of ``task`` for upstream ``label``, with -p and --seed replaced per seed
    and ``overrides`` appended to its -o string."""
    steps = []
    for step in json.loads((demo_out / "downstream" / label / "runner_steps.json").read_text()):
        argv = step.get("argv", [])
        if "evaluate_best" in step or "-d" not in argv or argv[argv.index("-d") + 1] != task:
            continue
        if "test_fold=" in " ".join(argv):
            raise SystemExit(f"{task}: a task with folds (emotion) is not supported; it has its own seeds per fold")
        # the candidate's folder below the task's (e.g. lr0.03 of a searched task; empty otherwise)
        below = Path(argv[argv.index("-p") + 1]).relative_to(demo_out.resolve() / "downstream" / label / task)
        for seed in seeds:
            expdir = out / f"{label}_seed{seed}" / below
            new = list(argv)
            new[new.index("-p") + 1] = str(expdir)
            new[new.index("--seed") + 1] = str(seed)
            if overrides:
                new[new.index("-o") + 1] = ",,".join([new[new.index("-o") + 1], *overrides])
            steps += [{"argv": new}, evaluate_best_step(expdir, ["--device", "cpu"], expdir / RUN_DONE_FILE)]
    return steps


def test_metric(run: Path, task: str) -> str:
    """The test metric of a run folder; for a searched task, of its dev-selected candidate (named)."""
    from s3prl_emoaware.downstreams import registry
    from s3prl_emoaware.downstreams.scoring import select_by_dev

    candidates = sorted(p.parent for p in run.glob(f"*/{RUN_DONE_FILE}"))
    expdir = select_by_dev(candidates) if candidates else run
    scores = registry.require(task).score(expdir)
    text = ", ".join(f"{s.metric} {100 * s.value:.2f}" for s in scores) or "no test result"
    return f"{text} ({expdir.name})" if candidates else text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo_out", type=Path)
    ap.add_argument("--task", default="phoneme_recognition")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--labels", nargs="*")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="runner -o overrides to append")
    args = ap.parse_args()
    args.demo_out = args.demo_out.resolve()
    labels = args.labels or sorted(
        p.name for p in (args.demo_out / "downstream").iterdir() if (p / "runner_steps.json").is_file()
    )
    steps = [
        s for label in labels for s in task_steps(args.demo_out, label, args.task, args.seeds, args.out, args.override)
    ]
    cache = HiddenCacheConfig(dir=str(args.demo_out / "downstream" / "hidden_cache"), limit_gb=20).to_argv()
    launch_batch(steps, args.out, cache)
    for label in labels:
        runs = [args.demo_out / "downstream" / label / args.task] + [args.out / f"{label}_seed{s}" for s in args.seeds]
        print(label, " / ".join(str(test_metric(r, args.task)) for r in runs))


if __name__ == "__main__":
    main()
