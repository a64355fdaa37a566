"""One runner child with every core vs several children with a core each: the same batch of SER runs.

Usage: python bench/bench_runner_workers.py [--runs 30] [--workers 2] [--steps 150] [--upstream mockingjay|npc]

Our studies run hundreds of short SUPERB runs (a small downstream, 150 steps, the frozen
upstream's states read from the hidden-state cache) through
:func:`s3prl_emoaware.s3prl_adapters.runner.launch_batch`. Such a run keeps one core busy
but not two: most of its time is Python (the runner, the dataloader, small matrix products).
This bench builds one generated IEMOCAP-layout corpus and one randomly initialised upstream
(the cost does not depend on the weights), fills the cache once, then times the same
``--runs`` emotion runs (the 5 folds, then again with other runner seeds) three ways: one
child with the default threads (the stock layout), ``--workers`` children with
``cpu_count // workers`` threads each, and the first layout again (to see the machine's
drift). Prints wall times, the ratio, and whether every run's test accuracy is the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure the checkout, not an installed copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="emotion runs (folds 1-5, then with other seeds)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150, help="training steps per run (the SER study's)")
    parser.add_argument("--upstream", default="mockingjay", choices=("mockingjay", "npc"))
    parser.add_argument("--size", default="demo", choices=("tiny", "demo"), help="generated corpus size")
    parser.add_argument("--keep", help="folder to keep the corpus and runs in (default: a temporary one)")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

    from bench_hidden_cache import random_upstream_checkpoint

    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.leaderboard import score_experiment
    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenCacheConfig
    from s3prl_emoaware.s3prl_adapters.runner import (
        evaluate_best_step,
        launch_batch,
        shipped_downstream_config,
        train_step,
    )

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        corpus = work / "iemocap"
        if not corpus.exists():
            synthesize_corpus("iemocap", corpus, seed=0, size=args.size)
        ckpt = work / f"{args.upstream}.ckpt"
        random_upstream_checkpoint(ckpt, args.upstream, hidden=192, layers=3)  # the shipped small EMS upstreams' size
        every = max(1, args.steps // 3)
        config = str(shipped_downstream_config("emotion"))
        cache_argv = HiddenCacheConfig(dir=str(work / "hidden_cache")).to_argv()

        def steps_for(tag: str, runs: int):
            steps = []
            for r in range(runs):
                fold, seed = r % 5 + 1, 1337 + r // 5
                expdir = work / tag / f"run{r}"
                override = (
                    f"config.runner.total_steps={args.steps},,config.runner.eval_step={every},,"
                    f"config.runner.save_step={every},,config.runner.log_step={every},,"
                    "config.runner.gradient_accumulate_steps=1,,config.downstream_expert.datarc.num_workers=0,,"
                    f"config.downstream_expert.datarc.root='{corpus}',,"
                    f"config.downstream_expert.datarc.meta_data='{corpus / 'meta_data'}',,"
                    f"config.downstream_expert.datarc.test_fold='fold{fold}'"
                )
                argv = f"-m train -d emotion -u ems_{args.upstream}_local".split() + ["-k", str(ckpt), "-c", config]
                argv += ["-p", str(expdir), "--device", "cpu", "--seed", str(seed), "-o", override]
                steps += [train_step(argv), evaluate_best_step(expdir, ["--device", "cpu"], expdir / "done.json")]
            return steps

        def timed(tag: str, workers: int):
            start = time.perf_counter()
            statuses = launch_batch(steps_for(tag, args.runs), work / tag, cache_argv, workers=workers)
            wall = time.perf_counter() - start
            bad = [s for s in statuses if not s["ok"]]
            if bad or len(statuses) != 2 * args.runs:
                raise SystemExit(f"{tag}: {len(bad)} failed steps ({bad[:1]})")
            results = [
                [(x.metric, x.value) for x in score_experiment(work / tag / f"run{r}")] for r in range(args.runs)
            ]
            if not all(results):
                raise SystemExit(f"{tag}: a run has no test result")
            return wall, results

        timed("fill_cache", 1)  # every utterance computed once; the timed batches read the cache
        one, one_res = timed("one_child", 1)
        many, many_res = timed(f"{args.workers}_children", args.workers)
        again, again_res = timed("one_child_again", 1)
        print(
            f"{args.runs} emotion runs x {args.steps} steps, {args.upstream} 3x192 upstream from the hidden-state "
            f"cache, {os.cpu_count()} cores"
        )
        print(f"  1 child, default threads      : {one:7.1f} s")
        print(
            f"  {args.workers} children, {max(1, (os.cpu_count() or 1) // args.workers)} thread(s) each : {many:7.1f} s  "
            f"({(one + again) / 2 / many:.2f}x the mean of the one-child runs)"
        )
        print(f"  1 child again                 : {again:7.1f} s")
        print(f"  every run's results equal across the layouts: {one_res == many_res == again_res}")


if __name__ == "__main__":
    main()
