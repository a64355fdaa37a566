"""``s3prl-emoaware run-downstream``: the stock s3prl runner with our shipped configs.

Takes exactly the flags of s3prl's ``run_downstream.py`` and forwards them verbatim. This
module parses and prints; the work is :mod:`s3prl_emoaware.s3prl_adapters.runner`'s, and what
differs between downstreams is their spec in :mod:`s3prl_emoaware.downstreams.registry`.
Additions:

- when a new training run (``-m train`` without ``-e``) gives no ``-c``, the shipped
  ``downstream_configs/<downstream>.yaml`` is used (s3prl would look for
  ``./downstream/<name>/config.yaml`` relative to the current directory, which the pip
  package does not ship), and its data roots are checked first, so a missing root is one
  clear error naming the key to set with ``-o``;
- ``--all-folds`` (IEMOCAP emotion): trains and evaluates the 5 leave-one-session-out
  folds into ``EXPDIR/fold1`` ... ``EXPDIR/fold5``, evaluates each fold's ``dev-best.ckpt``
  on its held-out session, and reports each fold and the mean (as SUPERB does), written to
  ``EXPDIR/all_folds.json``;
- ``--label-fraction F`` (downstreams whose spec has a ``label_fraction_key``: our SER downstreams
  ``emotion_cremad``/``emotion_esd``/``emotion_ravdess``): train with a class-stratified fraction F
  of the training labels (the few-label setting), i.e. ``-o config.downstream_expert.datarc.label_fraction=F``
  merged into any ``-o`` given;
- a hidden-state cache for frozen upstreams (on unless ``--no-hidden-cache`` or ``-f``):
  each utterance's hidden states are computed once and read back at later steps, epochs,
  evaluations, folds and runs (see :mod:`s3prl_emoaware.s3prl_adapters.hidden_cache`);
- SIGINT / SIGTERM: the runner saves ``states-<step>.ckpt`` after the step under way and stops;
  one line ``interrupted at step N (SIGTERM); saved ...; resume with: ... -e EXPDIR/states-N.ckpt``,
  exit 128 + the signal's number. A second runner into a running one's experiment folder refuses
  in one line naming the folder and the holder's pid.
"""

from __future__ import annotations

import argparse
from typing import List, Sequence

from ..s3prl_adapters import runner
from ..s3prl_adapters.runner import HiddenCacheRequest, RunDownstreamError, RunnerFlags, scan_flags
from ..utils.signals import Interrupted

__all__ = ["add_arguments", "run", "hidden_cache_argv", "scan_flags", "RunDownstreamError"]

ACCEPTS_EXTRA_ARGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-audio-check",
        action="store_true",
        help="do not check the headers of every audio file the config will read before starting",
    )
    parser.add_argument(
        "--all-folds",
        action="store_true",
        help="IEMOCAP emotion: train and evaluate all 5 leave-one-session-out folds, report each and the mean",
    )
    parser.add_argument(
        "--label-fraction",
        type=float,
        default=None,
        metavar="F",
        help="SER on CREMA-D/ESD/RAVDESS: train with a class-stratified fraction F (0 < F <= 1) "
        "of the training labels, e.g. 0.1",
    )
    cache = parser.add_argument_group("hidden-state cache (frozen upstreams only; never with -f)")
    cache.add_argument(
        "--no-hidden-cache", action="store_true", help="recompute the upstream at every step, as the stock runner does"
    )
    cache.add_argument(
        "--hidden-cache",
        metavar="DIR",
        default=None,
        help="cache folder, shared by runs (default: $S3PRL_EMOAWARE_HIDDEN_CACHE, else "
        "hidden_cache/ beside the experiment folder -p, i.e. in its parent)",
    )
    cache.add_argument(
        "--hidden-cache-limit-gb",
        type=float,
        default=20.0,
        metavar="GB",
        help="size limit of the cache folder; reaching it stops the run with one error line, "
        "nothing half-written (default 20). fp16 takes 2 bytes x width x 360,000 frames per hour "
        "of audio per layer at 10 ms frames (0.55 GB for a 768-wide layer)",
    )
    cache.add_argument(
        "--hidden-cache-dtype",
        choices=("float16", "float32"),
        default="float16",
        help="storage dtype (default float16: half the disk, ~1e-3 relative rounding)",
    )
    cache.add_argument(
        "--hidden-cache-layers",
        metavar="I,J,...",
        default=None,
        help="store only these hidden_states indices; the featurizer then weighs only them "
        "(default: all, or only -l N when the runner selects one layer)",
    )
    cache.add_argument(
        "--hidden-cache-memory-gb",
        type=float,
        default=HiddenCacheRequest.memory_gb,
        metavar="GB",
        help="entries each runner process has read and checked once are kept in memory up to this "
        f"size, so later steps skip the disk and the checks (default {HiddenCacheRequest.memory_gb:g}; 0: off)",
    )
    parser.epilog = (
        "All other flags are s3prl run_downstream.py flags (-m, -u, -d, -k, -c, -o, -p, -e, -f, "
        "--device ...), forwarded verbatim."
    )


def cache_request(args: argparse.Namespace) -> HiddenCacheRequest:
    """The ``--hidden-cache*`` options as the runner module takes them."""
    return HiddenCacheRequest(
        enabled=not args.no_hidden_cache,
        dir=args.hidden_cache,
        limit_gb=args.hidden_cache_limit_gb,
        dtype=args.hidden_cache_dtype,
        layers=args.hidden_cache_layers,
        memory_gb=args.hidden_cache_memory_gb,
    )


def hidden_cache_argv(args: argparse.Namespace, argv: Sequence[str], flags: RunnerFlags) -> List[str]:
    """The launcher's ``--hidden-cache*`` flags for these options, or [] when the cache is off."""
    return runner.hidden_cache_argv(cache_request(args), argv, flags)


def _print_folds(summary) -> None:
    print(f"{'fold':<8}{'acc':>8}{'majority':>10}{'n_test':>8}")
    for fold, r in summary.folds.items():
        print(f"{fold:<8}{r.acc:>8.4f}{r.majority_rate:>10.4f}{r.n_test:>8d}")
    print(f"{'mean':<8}{summary.mean_acc:>8.4f}   (std {summary.std_acc:.4f}; summary in {summary.path})")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    argv = list(args.extra)
    if args.label_fraction is not None:
        argv = runner.with_label_fraction(argv, args.label_fraction)
    argv, flags = runner.prepare_argv(argv, check_audio=not args.skip_audio_check)
    if args.all_folds:
        # the cache's default place follows the folds' base folder
        flags = dataclasses.replace(flags, expdir=str(runner.all_folds_base(flags)))
        _print_folds(runner.run_all_folds(argv, flags, hidden_cache_argv(args, argv, flags)))
        return 0
    try:
        return runner.launch(argv, hidden_cache_argv(args, argv, flags))
    except Interrupted as err:
        if err.checkpoint is not None:  # the runner resumes from its checkpoint with -e, not --resume
            err.resume_args = runner.replace_flag(args.argv, ("-e", "--past_exp"), err.checkpoint)
        raise
