"""The stock runner, driven from our side: its flags, configs, data checks, batches and folds.

``run-downstream``, the demo and the studies all go through these functions; the child side
(one runner process for one run or a batch of runs) is :mod:`.launch`. What differs between
downstreams (shipped config, data keys, audio files, label fraction, folds, scoring) comes from
the downstream registry (:mod:`s3prl_emoaware.downstreams.registry`).

- :func:`scan_flags` / :func:`replace_flag` / :func:`merge_override`: read and rewrite the
  runner flags we care about; every other flag passes through verbatim.
- :func:`prepare_argv`: a new training run without ``-c`` gets the shipped config, and its
  data keys and audio files are checked first (one error line naming the key or the file).
- :func:`launch` / :func:`launch_batch`: one runner run, or several in one child process
  (s3prl's import paid once), built from :func:`train_step` and :func:`evaluate_best_step`.
- :func:`run_all_folds`: train and test every fold of a fold downstream, scored per fold.

A SIGINT or SIGTERM while the child runs is passed on to it and waited for (the runner saves
``states-<step>.ckpt`` after the step under way and exits), then raised as :class:`Interrupted`
naming that checkpoint, so the caller prints one line saying how to resume.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..downstreams.scoring import LabelAccuracy
from ..utils.errors import UserFacingError
from ..utils.processes import child_threads, run_children
from ..utils.signals import Interrupted

logger = logging.getLogger(__name__)

__all__ = [
    "RunDownstreamError",
    "RunnerFlags",
    "HiddenCacheRequest",
    "AllFoldsSummary",
    "scan_flags",
    "replace_flag",
    "parse_override",
    "merge_override",
    "effective_config",
    "shipped_downstream_config",
    "with_label_fraction",
    "prepare_argv",
    "hidden_cache_argv",
    "launch",
    "launch_batch",
    "last_checkpoint",
    "train_step",
    "evaluate_best_step",
    "fold_override",
    "all_folds_base",
    "run_all_folds",
]

N_FOLDS = 5  # folds of a fold config whose downstream is not registered (IEMOCAP's sessions)
DEFAULT_FOLD_KEY = "downstream_expert.datarc.test_fold"

# flags of s3prl's run_downstream.py that we look at (all others pass through)
_FLAG_NAMES = {
    "-m": "mode",
    "--mode": "mode",
    "-d": "downstream",
    "--downstream": "downstream",
    "-c": "config",
    "--config": "config",
    "-e": "past_exp",
    "--past_exp": "past_exp",
    "-o": "override",
    "--override": "override",
    "-p": "expdir",
    "--expdir": "expdir",
    "-n": "expname",
    "--expname": "expname",
}


class RunDownstreamError(UserFacingError):
    pass


@dataclass(frozen=True)
class RunnerFlags:
    """The values of the runner flags we look at (None: not given)."""

    mode: Optional[str] = None
    downstream: Optional[str] = None
    config: Optional[str] = None
    past_exp: Optional[str] = None
    override: Optional[str] = None
    expdir: Optional[str] = None
    expname: Optional[str] = None

    @property
    def new_training(self) -> bool:
        """``-m train`` (the runner's default) without ``-e``: a run that starts from a config."""
        return (self.mode or "train") == "train" and self.past_exp is None

    def given(self) -> Dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class HiddenCacheRequest:
    """What the caller asked of the hidden-state cache (see :mod:`.hidden_cache`).

    Attributes:
        enabled: False to recompute the upstream at every step, as the stock runner does.
        dir: cache folder (default: ``$S3PRL_EMOAWARE_HIDDEN_CACHE``, else beside the experiment).
        limit_gb, dtype: size limit and storage dtype.
        layers: ``"I,J,..."``: store only these hidden_states indices.
        memory_gb: entries kept in each runner process's memory once read (``HiddenCacheConfig.memory_gb``).
    """

    enabled: bool = True
    dir: Optional[str] = None
    limit_gb: float = 20.0
    dtype: str = "float16"
    layers: Optional[str] = None
    memory_gb: float = 2.0


@dataclass(frozen=True)
class AllFoldsSummary:
    """``EXPDIR/all_folds.json``: each fold's test accuracy (and the checkpoint tested), their mean and spread."""

    downstream: str
    folds: Dict[str, LabelAccuracy]
    checkpoints: Dict[str, Optional[str]]
    mean_acc: float
    std_acc: float
    path: Path

    def to_dict(self) -> dict:
        return {
            "downstream": self.downstream,
            "folds": {k: {**dataclasses.asdict(v), "checkpoint": self.checkpoints[k]} for k, v in self.folds.items()},
            "mean_acc": self.mean_acc,
            "std_acc": self.std_acc,
        }


def scan_flags(argv: Sequence[str]) -> RunnerFlags:
    """The values of the runner flags we care about (``-x v`` and ``--xx=v`` forms)."""
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
    return RunnerFlags(**found)


def replace_flag(argv: Sequence[str], names: Tuple[str, ...], value: str) -> List[str]:
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


def merge_override(override: Optional[str], extra: str) -> str:
    """``-o`` text with ``extra`` after ``override`` (later items win in s3prl's parser)."""
    return f"{override},,{extra}" if override and override.lower() != "none" else extra


def effective_config(config_path: Path, override: Optional[str]) -> dict:
    """The YAML with the ``config.*`` overrides applied (values parsed as s3prl would: literals or strings)."""
    import ast

    from ..config import parse_yaml

    # safe loading, duplicated keys refused, errors as one line naming the file
    config = parse_yaml(Path(config_path).read_text(), str(config_path)) or {}
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
    """``downstream_configs/<name>.yaml`` of a downstream (its registry spec names it), if shipped."""
    from ..config import shipped_config_dir
    from ..downstreams.registry import get

    spec = get(downstream)
    path = shipped_config_dir("downstream_configs") / f"{spec.config_name if spec else downstream}.yaml"
    return path if path.is_file() else None


def with_label_fraction(argv: Sequence[str], fraction: float) -> List[str]:
    """``argv`` with the downstream's label-fraction key set to ``fraction`` in its ``-o`` (checked first)."""
    from ..downstreams import registry

    flags = scan_flags(argv)
    spec = registry.get(flags.downstream)
    if spec is None or spec.label_fraction_key is None:
        takes = [s for s in registry.names() if registry.require(s).label_fraction_key]
        raise RunDownstreamError(f"--label-fraction applies to {', '.join(takes)}, not to -d {flags.downstream!r}")
    if not 0 < fraction <= 1:
        raise RunDownstreamError(f"--label-fraction must be in (0, 1], got {fraction}")
    extra = f"config.{spec.label_fraction_key}={fraction}"
    return replace_flag(argv, ("-o", "--override"), merge_override(flags.override, extra))


def prepare_argv(argv: Sequence[str], check_audio: bool = True) -> Tuple[List[str], RunnerFlags]:
    """Add the shipped ``-c`` where needed and check data keys and audio; return (argv, flags)."""
    from ..downstreams.data_roots import check_data_roots

    argv, flags = list(argv), scan_flags(argv)
    if not flags.new_training:
        return argv, flags
    if flags.downstream is None:
        raise RunDownstreamError("-d/--downstream is required for a new training run")
    if flags.config is None:
        shipped = shipped_downstream_config(flags.downstream)
        if shipped is None:
            raise RunDownstreamError(
                f"no -c given and no shipped config for downstream {flags.downstream!r}; pass -c PATH/config.yaml"
            )
        argv += ["-c", str(shipped)]
        flags = dataclasses.replace(flags, config=str(shipped))
    config_path = Path(flags.config)
    if not config_path.is_file():
        raise RunDownstreamError(f"{config_path}: config file not found (-c)")
    config = effective_config(config_path, flags.override)
    check_data_roots(flags.downstream, config)
    if check_audio:
        from ..corpora.validate import check_downstream_audio

        n = check_downstream_audio(flags.downstream, config)
        logger.info("checked %d audio files", n)
    return argv, flags


def hidden_cache_argv(request: HiddenCacheRequest, argv: Sequence[str], flags: RunnerFlags) -> List[str]:
    """The launcher's ``--hidden-cache*`` flags, or [] when the cache is off (asked, or ``-f``)."""
    from .hidden_cache import HiddenCacheConfig, default_cache_dir, parse_layers

    off = (
        "--no-hidden-cache"
        if not request.enabled
        else ("-f" if "-f" in argv or "--upstream_trainable" in argv else None)
    )
    if off is not None:
        if request.layers is not None:
            raise RunDownstreamError(f"--hidden-cache-layers selects cached layers; it has no meaning with {off}")
        if off == "-f":
            logger.info("hidden-state cache off: the upstream is fine-tuned (-f)")
        return []
    if request.dir:
        where = Path(request.dir)
    else:
        expdir = flags.expdir
        if expdir is None and flags.past_exp is not None:
            expdir = str(Path(flags.past_exp).parent)
        if expdir is None:
            expdir = str(Path("result/downstream") / (flags.expname or flags.downstream or "run"))
        where = default_cache_dir(expdir)
    config = HiddenCacheConfig(
        dir=str(where),
        limit_gb=request.limit_gb,
        dtype=request.dtype,
        layers=parse_layers(request.layers),
        memory_gb=request.memory_gb,
    )
    return config.to_argv()


def _launcher() -> List[str]:
    return [sys.executable, "-m", "s3prl_emoaware.s3prl_adapters.launch"]


def _run_child(cmd: Sequence[str]) -> Tuple[int, Optional[int]]:
    """Run a launcher child to its end: (exit status, the first SIGINT/SIGTERM this process got).

    Each signal is passed on to the child instead of stopping this process, which waits: the
    child stops cleanly (its module docstring says how) and is never left running on its own.
    """
    rcs, signum = run_children([cmd])
    return rcs[0], signum


def _experiment_folder(flags: RunnerFlags) -> Path:
    """Where the runner writes this run's checkpoints (s3prl's rule: ``-p``, else
    ``result/downstream/<-n>``; a resumed run writes beside the checkpoint it resumes)."""
    if flags.past_exp is not None:
        past = Path(flags.past_exp)
        return past if past.is_dir() else past.parent
    return Path(flags.expdir) if flags.expdir is not None else Path("result/downstream") / str(flags.expname)


def last_checkpoint(expdir: Path, since: float = 0.0) -> Optional[Path]:
    """The highest ``states-<step>.ckpt`` of ``expdir`` written at or after ``since`` (a time), if any."""
    states = []
    for path in Path(expdir).glob("states-*.ckpt"):
        try:
            if path.stat().st_mtime >= since:
                states.append((int(path.stem.split("-")[-1]), path))
        except (OSError, ValueError):
            continue
    return max(states)[1] if states else None


def launch(argv: Sequence[str], cache_argv: Sequence[str] = ()) -> int:
    """Run the stock runner with ``argv`` in a child process; return its exit status.

    Raises :class:`Interrupted` (with the checkpoint it saved, if any) when a SIGINT/SIGTERM
    stopped it."""
    cmd = [*_launcher(), *cache_argv, *argv]
    logger.info("running: %s", " ".join(cmd))
    start = time.time() - 1.0  # mtimes may round down
    rc, signum = _run_child(cmd)
    if signum is None or rc == 0:  # a signal after the run's end: it finished
        return rc
    checkpoint = last_checkpoint(_experiment_folder(scan_flags(argv)), start)
    if checkpoint is None:
        raise Interrupted(signum, "a point before its first checkpoint")
    raise Interrupted(signum, f"step {checkpoint.stem.split('-')[-1]}", str(checkpoint))


def train_step(argv: Sequence[str]) -> dict:
    """A batch step: one runner invocation with ``argv``."""
    return {"argv": list(argv)}


def evaluate_best_step(expdir: Path, argv: Sequence[str] = (), marker: Optional[Path] = None) -> dict:
    """A batch step: evaluate ``expdir``'s best checkpoint on test (``marker``: written when it succeeds)."""
    step = {"evaluate_best": str(expdir), "argv": list(argv)}
    if marker is not None:
        step["marker"] = str(marker)
    return step


def _run_cost(step: dict) -> int:
    """A run's weight when sharing a batch out: its ``config.runner.total_steps`` override, else 1."""
    for item in step.get("argv", []):
        for part in str(item).split(",,"):
            key, _, value = part.partition("=")
            if key.strip() == "config.runner.total_steps" and value.strip().isdigit():
                return max(1, int(value))
    return 1


def split_steps(steps: List[dict], workers: int) -> List[List[int]]:
    """Indices of ``steps`` for each of at most ``workers`` children: whole runs (a train step with
    the evaluation steps that follow it) in contiguous chunks of about equal cost (the runs'
    training steps), so one upstream's runs mostly share a child (its hidden states are computed
    once) and a run's evaluation follows it."""
    runs: List[List[int]] = []
    for i, step in enumerate(steps):
        if "evaluate_best" in step and runs:
            runs[-1].append(i)
        else:
            runs.append([i])
    workers = max(1, min(workers, len(runs)))
    before = [0]  # before[b]: the cost of runs[:b]
    for run in runs:
        before.append(before[-1] + _run_cost(steps[run[0]]))
    bounds = [0]
    for k in range(1, workers):  # each chunk keeps at least one run
        target = k * before[-1] / workers
        candidates = range(bounds[-1] + 1, len(runs) - (workers - k) + 1)
        bounds.append(min(candidates, key=lambda b: abs(before[b] - target)))
    bounds.append(len(runs))
    return [[i for run in runs[bounds[k] : bounds[k + 1]] for i in run] for k in range(workers)]


def launch_batch(steps: List[dict], workdir: Path, cache_argv: Sequence[str] = (), workers: int = 1) -> List[dict]:
    """Run several runner steps in one child process (one s3prl import); return their statuses.

    ``workers`` > 1 shares the steps out to that many children running at once (whole runs,
    :func:`split_steps`), each with ``cpu_count // workers`` threads unless ``OMP_NUM_THREADS``
    is set: the small downstreams of our studies keep a core busy each far better than two
    threads keep two (``bench/bench_runner_workers.py``). Statuses come back in step order.
    Children share the hidden-state cache folder (entries are written by rename, so a race
    writes one twice, never half); its size limit is checked by each child on its own.
    """
    from ..utils.atomic import atomic_write_json

    if not steps:
        return []
    workdir.mkdir(parents=True, exist_ok=True)
    status_file = workdir / "runner_status.json"
    groups = split_steps(steps, workers)
    single = len(groups) == 1
    names = [
        ("runner_steps.json", "runner_status.json")
        if single
        else (f"runner_steps_w{k}.json", f"runner_status_w{k}.json")
        for k in range(len(groups))
    ]
    cmds, envs = [], []
    threads = child_threads(len(groups))
    for group, (steps_name, status_name) in zip(groups, names):
        atomic_write_json(workdir / steps_name, [steps[i] for i in group])
        if (workdir / status_name).exists():
            (workdir / status_name).unlink()
        cmds.append(
            [*_launcher(), *cache_argv, "--batch", str(workdir / steps_name), "--status", str(workdir / status_name)]
        )
        envs.append(dict(os.environ, **({"OMP_NUM_THREADS": threads} if threads else {})))
    if not single and status_file.exists():
        status_file.unlink()
    logger.info(
        "running %d runner steps in %d process(es)%s: %s",
        len(steps),
        len(cmds),
        f", {threads} thread(s) each" if threads else "",
        " ".join(cmds[0]),
    )
    rcs, signum = run_children(cmds, envs)  # all at once; signals passed on

    def read(status_name: str) -> Optional[List[dict]]:
        path = workdir / status_name
        return json.loads(path.read_text()) if path.is_file() else None

    parts = [read(status_name) for _, status_name in names]
    merged: List[dict] = []
    for group, part in zip(groups, parts):
        for status in part or []:
            merged.append({**status, "step": group[status["step"]]} if isinstance(status.get("step"), int) else status)
    merged.sort(key=lambda status: status.get("step", 0))
    if not single:
        atomic_write_json(status_file, merged)
    if signum is not None and any(rc != 0 for rc in rcs):
        # the steps under way are not recorded as done: the caller's re-run runs them again
        raise Interrupted(signum, f"runner batch step {len(merged) + 1} of {len(steps)}")
    if all(part is None for part in parts):
        raise RunDownstreamError(
            f"the runner batch stopped before its first step finished (see output above; {workdir / names[0][0]})"
        )
    return merged


def fold_override(downstream: str, fold: str) -> str:
    """``-o`` item that holds out ``fold`` (the downstream's fold key; IEMOCAP's ``datarc.test_fold`` by default)."""
    from ..downstreams.registry import get

    spec = get(downstream)
    key = spec.fold_key if spec is not None and spec.fold_key else DEFAULT_FOLD_KEY
    return f"config.{key}='{fold}'"


def all_folds_base(flags: RunnerFlags) -> Path:
    """The folder holding ``fold1`` ... of ``--all-folds``: ``-p``, else the runner's default place."""
    if flags.expdir is not None:
        return Path(flags.expdir)
    return Path("result/downstream") / (flags.expname or f"{flags.downstream}_all_folds")


RUN_DONE_FILE = "evaluated_best.json"  # written by the batch launcher when a run's best checkpoint was tested


def finished_run(expdir: Path) -> Optional[dict]:
    """The done-marker of a run whose best checkpoint was tested, or None (absent or unreadable: it runs again)."""
    try:
        record = json.loads((Path(expdir) / RUN_DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("ok") else None


def discard_unfinished(expdir: Path) -> None:
    """Remove a run stopped part-way (signal, kill, failure), so it starts over alone in its folder, as an
    uninterrupted run would (never resumed into: its checkpoints and TensorBoard file would mix with the new)."""
    if Path(expdir).is_dir():
        logger.info("%s: unfinished run, removed to start over", expdir)
        shutil.rmtree(expdir)


def run_all_folds(argv: Sequence[str], flags: RunnerFlags, cache_argv: Sequence[str] = ()) -> AllFoldsSummary:
    """Train each fold into ``BASE/fold<k>``, test its best checkpoint, write ``BASE/all_folds.json``."""
    from ..downstreams.registry import get, has_config_key
    from ..downstreams.scoring import fold_accuracy
    from ..utils.atomic import atomic_write_json

    if not flags.new_training:
        raise RunDownstreamError("--all-folds trains new experiments: use it with -m train and without -e")
    spec = get(flags.downstream)
    key = spec.fold_key if spec is not None and spec.fold_key else DEFAULT_FOLD_KEY
    n_folds = spec.folds if spec is not None and spec.fold_key else N_FOLDS
    config = effective_config(Path(flags.config), flags.override)
    if not has_config_key(config, key):
        raise RunDownstreamError(f"--all-folds needs an IEMOCAP-style config with {key}; {flags.config} has none")
    base = all_folds_base(flags)
    device = ["--device", argv[list(argv).index("--device") + 1]] if "--device" in argv else []
    folds = [f"fold{k}" for k in range(1, n_folds + 1)]
    steps: List[dict] = []
    checkpoints: Dict[str, Optional[str]] = {}
    pending: List[str] = []
    for fold in folds:
        expdir = base / fold
        done = finished_run(expdir)
        if done is not None:  # tested by an earlier run of this command (e.g. one stopped at a later fold): kept
            checkpoints[fold] = done.get("checkpoint")
            continue
        discard_unfinished(expdir)
        override = merge_override(flags.override, fold_override(flags.downstream, fold))
        train_argv = replace_flag(replace_flag(argv, ("-p", "--expdir"), str(expdir)), ("-o", "--override"), override)
        steps += [train_step(train_argv), evaluate_best_step(expdir, device, expdir / RUN_DONE_FILE)]
        pending.append(fold)
    if pending and len(pending) < len(folds):
        logger.info("%s: %d fold(s) already tested are kept; running %s", base, len(folds) - len(pending), pending)
    statuses = launch_batch(steps, base, cache_argv) if steps else []
    failed = [s for s in statuses if not s["ok"]]
    if failed or len(statuses) != len(steps):
        detail = failed[0].get("error", "stopped early") if failed else "stopped early"
        raise RunDownstreamError(
            f"{len(failed) or len(steps) - len(statuses)} runner step(s) failed in {base}: {detail}; "
            "the same command again keeps the folds already tested and runs the rest"
        )
    try:
        results = {fold: fold_accuracy(base / fold, fold) for fold in folds}
    except (OSError, ValueError) as err:
        raise RunDownstreamError(str(err)) from None
    checkpoints.update({fold: statuses[2 * k + 1].get("checkpoint") for k, fold in enumerate(pending)})
    checkpoints = {fold: checkpoints.get(fold) for fold in folds}
    accs = [r.acc for r in results.values()]
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / len(accs)) ** 0.5
    summary = AllFoldsSummary(flags.downstream, results, checkpoints, mean, std, base / "all_folds.json")
    atomic_write_json(summary.path, summary.to_dict())
    return summary
