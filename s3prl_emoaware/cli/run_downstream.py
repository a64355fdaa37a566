"""``s3prl-emoaware run-downstream``: the stock s3prl runner with our shipped configs.

Takes exactly the flags of s3prl's ``run_downstream.py`` and forwards them verbatim. Two
additions:

- when a new training run (``-m train`` without ``-e``) gives no ``-c``, the shipped
  ``downstream_configs/<downstream>.yaml`` is used (s3prl would look for
  ``./downstream/<name>/config.yaml`` relative to the current directory, which the pip
  package does not ship), and its data roots are checked first, so a missing root is one
  clear error naming the key to set with ``-o``;
- ``--all-folds`` (IEMOCAP emotion): trains and evaluates the 5 leave-one-session-out
  folds into ``EXPDIR/fold1`` ... ``EXPDIR/fold5``, evaluates each fold's ``dev-best.ckpt``
  on its held-out session, and reports each fold and the mean (as SUPERB does), written to
  ``EXPDIR/all_folds.json``;
- ``--label-fraction F`` (our SER downstreams ``emotion_cremad``/``emotion_esd``/``emotion_ravdess``):
  train with a class-stratified fraction F of the training labels (the few-label setting),
  i.e. ``-o config.downstream_expert.datarc.label_fraction=F`` merged into any ``-o`` given;
- a hidden-state cache for frozen upstreams (on unless ``--no-hidden-cache`` or ``-f``):
  each utterance's hidden states are computed once and read back at later steps, epochs,
  evaluations, folds and runs (see :mod:`s3prl_emoaware.s3prl_adapters.hidden_cache`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..utils.errors import UserFacingError

logger = logging.getLogger(__name__)

ACCEPTS_EXTRA_ARGS = True
N_FOLDS = 5
# downstreams whose datarc understands label_fraction (ours, see s3prl_emoaware/downstreams/ser)
LABEL_FRACTION_DOWNSTREAMS = ("emotion_cremad", "emotion_esd", "emotion_ravdess")

# flags of s3prl's run_downstream.py that this wrapper needs to look at (all others pass through)
_FLAG_NAMES = {
    "-m": "mode", "--mode": "mode",
    "-d": "downstream", "--downstream": "downstream",
    "-c": "config", "--config": "config",
    "-e": "past_exp", "--past_exp": "past_exp",
    "-o": "override", "--override": "override",
    "-p": "expdir", "--expdir": "expdir",
    "-n": "expname", "--expname": "expname",
}


class RunDownstreamError(UserFacingError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-audio-check", action="store_true",
                        help="do not check the headers of every audio file the config will read before starting")
    parser.add_argument("--all-folds", action="store_true",
                        help="IEMOCAP emotion: train and evaluate all 5 leave-one-session-out folds, report each and the mean")
    parser.add_argument("--label-fraction", type=float, default=None, metavar="F",
                        help="SER on CREMA-D/ESD/RAVDESS: train with a class-stratified fraction F (0 < F <= 1) "
                             "of the training labels, e.g. 0.1")
    cache = parser.add_argument_group("hidden-state cache (frozen upstreams only; never with -f)")
    cache.add_argument("--no-hidden-cache", action="store_true",
                       help="recompute the upstream at every step, as the stock runner does")
    cache.add_argument("--hidden-cache", metavar="DIR", default=None,
                       help="cache folder, shared by runs (default: $S3PRL_EMOAWARE_HIDDEN_CACHE, else "
                            "hidden_cache/ beside the experiment folder -p, i.e. in its parent)")
    cache.add_argument("--hidden-cache-limit-gb", type=float, default=20.0, metavar="GB",
                       help="size limit of the cache folder; reaching it stops the run with one error line, "
                            "nothing half-written (default 20). fp16 takes 2 bytes x width x 360,000 frames per hour "
                            "of audio per layer at 10 ms frames (0.55 GB for a 768-wide layer)")
    cache.add_argument("--hidden-cache-dtype", choices=("float16", "float32"), default="float16",
                       help="storage dtype (default float16: half the disk, ~1e-3 relative rounding)")
    cache.add_argument("--hidden-cache-layers", metavar="I,J,...", default=None,
                       help="store only these hidden_states indices; the featurizer then weighs only them "
                            "(default: all, or only -l N when the runner selects one layer)")
    parser.epilog = ("All other flags are s3prl run_downstream.py flags (-m, -u, -d, -k, -c, -o, -p, -e, -f, "
                     "--device ...), forwarded verbatim.")


def scan_flags(argv: Sequence[str]) -> Dict[str, str]:
    """The values of the runner flags this wrapper cares about (``-x v`` and ``-x=v`` forms)."""
    found: Dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, value = (arg.split("=", 1) + [None])[:2] if arg.startswith("--") and "=" in arg else (arg, None)
        if name in _FLAG_NAMES:
            if value is None and i + 1 < len(argv):
                value = argv[i + 1]
                i += 1
            if value is not None:
                found[_FLAG_NAMES[name]] = value
        i += 1
    return found


def replace_flag(argv: List[str], names: Tuple[str, ...], value: str) -> List[str]:
    """Copy of ``argv`` with flag ``names`` set to ``value`` (appended when absent)."""
    out: List[str] = []
    i, replaced = 0, False
    while i < len(argv):
        arg = argv[i]
        if arg in names:
            out += [arg, value]
            i += 2
            replaced = True
            continue
        if any(arg.startswith(n + "=") for n in names if n.startswith("--")):
            out.append(f"{arg.split('=', 1)[0]}={value}")
            replaced = True
        else:
            out.append(arg)
        i += 1
    if not replaced:
        out += [names[0], value]
    return out


def parse_override(text: Optional[str]) -> Dict[str, str]:
    """s3prl's ``-o`` syntax: ``config.a.b=v,,config.c=w`` -> {"config.a.b": "v", ...}."""
    result: Dict[str, str] = {}
    if not text or text.lower() == "none":
        return result
    for item in text.split(",,"):
        if "=" in item:
            key, value = item.split("=", 1)
            result[key.strip()] = value.strip()
    return result


def effective_config(config_path: Path, override: Optional[str]) -> dict:
    """The YAML with the ``config.*`` overrides applied (values parsed as s3prl would: literals or strings)."""
    import ast

    import yaml

    config = yaml.safe_load(config_path.read_text()) or {}
    for key, raw in parse_override(override).items():
        if not key.startswith("config."):
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        node = config
        parts = key.split(".")[1:]
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return config


def shipped_downstream_config(downstream: str) -> Optional[Path]:
    from ..config import shipped_config_dir

    path = shipped_config_dir("downstream_configs") / f"{downstream}.yaml"
    return path if path.is_file() else None


def _check_roots(downstream: str, config: dict) -> None:
    try:
        from ..downstreams.data_roots import check_data_roots
    except ImportError:  # pragma: no cover - the checker ships with the downstream configs
        return
    check_data_roots(downstream, config)


def launch(argv: Sequence[str], cache_argv: Sequence[str] = ()) -> int:
    """Run the stock runner with ``argv`` in a child process; return its exit status."""
    cmd = [sys.executable, "-m", "s3prl_emoaware.s3prl_adapters.launch", *cache_argv, *argv]
    logger.info("running: %s", " ".join(cmd))
    return subprocess.call(cmd, env=os.environ.copy())


def launch_batch(steps: List[dict], workdir: Path, cache_argv: Sequence[str] = ()) -> List[dict]:
    """Run several runner steps in one child process (one s3prl import); return their statuses."""
    from ..utils.atomic import atomic_write_json

    workdir.mkdir(parents=True, exist_ok=True)
    steps_file, status_file = workdir / "runner_steps.json", workdir / "runner_status.json"
    atomic_write_json(steps_file, steps)
    if status_file.exists():
        status_file.unlink()
    cmd = [sys.executable, "-m", "s3prl_emoaware.s3prl_adapters.launch", *cache_argv, "--batch", str(steps_file),
           "--status", str(status_file)]
    logger.info("running %d runner steps in one process: %s", len(steps), " ".join(cmd))
    subprocess.call(cmd, env=os.environ.copy())
    if not status_file.is_file():
        raise RunDownstreamError(f"the runner batch stopped before its first step finished (see output above; {steps_file})")
    return json.loads(status_file.read_text())


def with_label_fraction(argv: List[str], fraction: float) -> List[str]:
    """``argv`` with ``datarc.label_fraction=fraction`` merged into its ``-o`` (checked first)."""
    flags = scan_flags(argv)
    if flags.get("downstream") not in LABEL_FRACTION_DOWNSTREAMS:
        raise RunDownstreamError(f"--label-fraction applies to {', '.join(LABEL_FRACTION_DOWNSTREAMS)}, "
                                 f"not to -d {flags.get('downstream')!r}")
    if not 0 < fraction <= 1:
        raise RunDownstreamError(f"--label-fraction must be in (0, 1], got {fraction}")
    extra = f"config.downstream_expert.datarc.label_fraction={fraction}"
    override = flags.get("override")
    return replace_flag(argv, ("-o", "--override"), f"{override},,{extra}" if override else extra)


def prepare_argv(argv: List[str], check_audio: bool = True) -> Tuple[List[str], Dict[str, str]]:
    """Add the shipped ``-c`` where needed and check data roots; return (argv, flags)."""
    flags = scan_flags(argv)
    mode = flags.get("mode", "train")
    if mode == "train" and "past_exp" not in flags:
        if "downstream" not in flags:
            raise RunDownstreamError("-d/--downstream is required for a new training run")
        if "config" not in flags:
            shipped = shipped_downstream_config(flags["downstream"])
            if shipped is None:
                raise RunDownstreamError(
                    f"no -c given and no shipped config for downstream {flags['downstream']!r}; "
                    "pass -c PATH/config.yaml")
            argv = argv + ["-c", str(shipped)]
            flags["config"] = str(shipped)
        config_path = Path(flags["config"])
        if not config_path.is_file():
            raise RunDownstreamError(f"{config_path}: config file not found (-c)")
        config = effective_config(config_path, flags.get("override"))
        _check_roots(flags["downstream"], config)
        if check_audio:
            from ..corpora.validate import check_downstream_audio

            n = check_downstream_audio(flags["downstream"], config)
            logger.info("checked %d audio files", n)
    return argv, flags


def _fold_accuracy(expdir: Path, fold: str) -> Dict[str, float]:
    """Accuracy and majority-class rate from the stock emotion expert's test prediction files."""
    pred_file, truth_file = expdir / f"test_{fold}_predict.txt", expdir / f"test_{fold}_truth.txt"
    if not pred_file.is_file() or not truth_file.is_file():
        raise RunDownstreamError(f"{expdir}: no test predictions for {fold} (expected {pred_file.name})")
    pred = dict(line.split() for line in pred_file.read_text().splitlines() if line.strip())
    truth = dict(line.split() for line in truth_file.read_text().splitlines() if line.strip())
    if not truth:
        raise RunDownstreamError(f"{truth_file}: empty test set for {fold}")
    correct = sum(pred.get(k) == v for k, v in truth.items())
    labels = list(truth.values())
    majority = max(labels.count(c) for c in set(labels)) / len(labels)
    return {"acc": correct / len(truth), "majority_rate": majority, "n_test": len(truth)}


def hidden_cache_argv(args: argparse.Namespace, argv: Sequence[str], flags: Dict[str, str]) -> List[str]:
    """The launcher's ``--hidden-cache*`` flags, or [] when the cache is off (asked, or ``-f``)."""
    from ..s3prl_adapters.hidden_cache import HiddenCacheConfig, default_cache_dir, parse_layers

    off = "--no-hidden-cache" if args.no_hidden_cache else (
        "-f" if "-f" in argv or "--upstream_trainable" in argv else None)
    if off is not None:
        if args.hidden_cache_layers is not None:
            raise RunDownstreamError(f"--hidden-cache-layers selects cached layers; it has no meaning with {off}")
        if off == "-f":
            logger.info("hidden-state cache off: the upstream is fine-tuned (-f)")
        return []
    if args.hidden_cache:
        where = Path(args.hidden_cache)
    else:
        expdir = flags.get("expdir")
        if expdir is None and "past_exp" in flags:
            expdir = str(Path(flags["past_exp"]).parent)
        if expdir is None:
            expdir = str(Path("result/downstream") / flags.get("expname", flags.get("downstream", "run")))
        where = default_cache_dir(expdir)
    config = HiddenCacheConfig(dir=str(where), limit_gb=args.hidden_cache_limit_gb, dtype=args.hidden_cache_dtype,
                               layers=parse_layers(args.hidden_cache_layers))
    return config.to_argv()


def run_all_folds(argv: List[str], flags: Dict[str, str], cache_argv: Sequence[str] = ()) -> int:
    from ..utils.atomic import atomic_write_json

    if flags.get("mode", "train") != "train" or "past_exp" in flags:
        raise RunDownstreamError("--all-folds trains new experiments: use it with -m train and without -e")
    config = effective_config(Path(flags["config"]), flags.get("override"))
    if "test_fold" not in (config.get("downstream_expert", {}).get("datarc", {}) or {}):
        raise RunDownstreamError(
            f"--all-folds needs an IEMOCAP-style config with downstream_expert.datarc.test_fold; "
            f"{flags['config']} has none")
    if "expdir" in flags:
        base = Path(flags["expdir"])
    else:
        base = Path("result/downstream") / flags.get("expname", f"{flags['downstream']}_all_folds")
    steps: List[dict] = []
    device = ["--device", argv[argv.index("--device") + 1]] if "--device" in argv else []
    for k in range(1, N_FOLDS + 1):
        fold = f"fold{k}"
        expdir = base / fold
        override = flags.get("override")
        fold_override = f"config.downstream_expert.datarc.test_fold='{fold}'"
        override = f"{override},,{fold_override}" if override and override.lower() != "none" else fold_override
        train_argv = replace_flag(replace_flag(argv, ("-p", "--expdir"), str(expdir)), ("-o", "--override"), override)
        steps += [{"argv": train_argv}, {"evaluate_best": str(expdir), "argv": device}]
    statuses = launch_batch(steps, base, cache_argv)
    failed = [s for s in statuses if not s["ok"]]
    if failed or len(statuses) != len(steps):
        detail = failed[0].get("error", "stopped early") if failed else "stopped early"
        raise RunDownstreamError(f"{len(failed) or len(steps) - len(statuses)} runner step(s) failed in {base}: {detail}")
    results: Dict[str, Dict[str, float]] = {}
    for k in range(1, N_FOLDS + 1):
        fold = f"fold{k}"
        results[fold] = _fold_accuracy(base / fold, fold)
        results[fold]["checkpoint"] = statuses[2 * k - 1].get("checkpoint")
    accs = [r["acc"] for r in results.values()]
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / len(accs)) ** 0.5
    summary = {"downstream": flags["downstream"], "folds": results, "mean_acc": mean, "std_acc": std}
    atomic_write_json(base / "all_folds.json", summary)
    print(f"{'fold':<8}{'acc':>8}{'majority':>10}{'n_test':>8}")
    for fold, r in results.items():
        print(f"{fold:<8}{r['acc']:>8.4f}{r['majority_rate']:>10.4f}{r['n_test']:>8d}")
    print(f"{'mean':<8}{mean:>8.4f}   (std {std:.4f}; summary in {base / 'all_folds.json'})")
    return 0


def run(args: argparse.Namespace) -> int:
    argv = list(args.extra)
    if args.label_fraction is not None:
        argv = with_label_fraction(argv, args.label_fraction)
    argv, flags = prepare_argv(argv, check_audio=not args.skip_audio_check)
    if args.all_folds:
        if "expdir" not in flags:  # the cache's default place follows the folds' base folder
            flags["expdir"] = str(Path("result/downstream") / flags.get("expname", f"{flags['downstream']}_all_folds"))
        return run_all_folds(argv, flags, hidden_cache_argv(args, argv, flags))
    return launch(argv, hidden_cache_argv(args, argv, flags))
