"""``s3prl-emoaware demo``: the whole pipeline on generated corpora, ending with a leaderboard.

Stages (each resumable, see :mod:`.stages`):

1. ``corpora``: synthesise IEMOCAP-, LibriSpeech- and FSC-layout corpora with espeak-ng, plus
   a separate IEMOCAP-layout corpus (another seed) used, without its labels, for
   pre-training, so no downstream test audio is seen in pre-training;
2. ``strengthnet``: train StrengthNet on a third corpus (ESD layout, other speakers and
   seed: the paper trained it on ESD), never on the IEMOCAP-layout folds it is judged on;
3. ``intensity``: frame intensities of the pre-training corpus, aligned to the fbank frames;
4. ``pretrain_<label>``: each configured pre-training (e.g. Mockingjay with random and with
   EMS masking, same seed, steps and data);
5. ``downstream_<upstream>``: for every upstream (baselines and pre-trained ones), the stock
   s3prl runner on emotion (all IEMOCAP folds), phoneme recognition and intent classification;
6. ``leaderboard``: one table (Markdown, CSV, PNG) from all runner experiments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .downstream import TaskSpec, UpstreamSpec, run_upstream
from .stages import Stage, run_stages, stage_times
from .steps import (
    cluster_speakers,
    corpus_plan,
    describe_intensities,
    load_job_config,
    recipe_needs_intensity,
    synthesize_missing,
    train_speaker_encoder,
)

logger = logging.getLogger(__name__)

__all__ = ["DemoConfig", "DownstreamSizes", "build_stages", "run_demo", "superb_tasks"]


@dataclass
class DownstreamSizes:
    """Runner overrides that size the SUPERB runs (s3prl ``-o`` syntax, data roots added here).

    PR and IC default to the steps the demo and the EMS study both use (chosen in ``full.yaml``'s
    comment: PR's dev PER is best at 500 steps; IC at 150 steps left Mockingjay at chance). The
    emotion default (150 steps) is the EMS study's; the demo runs 300 (``full.yaml``).
    """

    emotion: str = (
        "config.runner.total_steps=150,,config.runner.eval_step=50,,config.runner.save_step=50,,"
        "config.runner.log_step=50,,config.runner.gradient_accumulate_steps=1,,"
        "config.optimizer.lr=1.0e-3,,config.downstream_expert.datarc.num_workers=0,,"
        "config.downstream_expert.datarc.train_batch_size=8"
    )
    phoneme_recognition: str = (
        "config.runner.total_steps=500,,config.runner.eval_step=100,,"
        "config.runner.save_step=100,,config.runner.log_step=50,,"
        "config.runner.gradient_accumulate_steps=1,,config.downstream_expert.corpus.num_workers=0"
    )
    fluent_commands: str = (
        "config.runner.total_steps=1000,,config.runner.eval_step=100,,config.runner.save_step=100,,"
        "config.runner.log_step=50,,config.optimizer.lr=1.0e-3,,"
        "config.downstream_expert.datarc.num_workers=0,,config.downstream_expert.datarc.train_batch_size=8"
    )


@dataclass
class PretrainSpec:
    """One pre-trained upstream of the demo.

    Attributes:
        label: leaderboard row and folder name (e.g. ``mockingjay_ems``).
        config: shipped upstream config (``upstream_configs/<config>.yaml``).
        masking: ``random`` (baseline) or ``ems``.
        upstream: the runner ``-u`` name that loads the checkpoint (``-k``).
        overrides: recipe overrides (``training.total_steps=100`` ...).
    """

    label: str
    config: str
    masking: str
    upstream: str
    overrides: List[str] = field(default_factory=list)


@dataclass
class DemoConfig:
    """Everything the demo does; ``s3prl_emoaware/demo/configs/{full,quick}.yaml`` fill it.

    Attributes:
        seed: seed of the corpora, pre-training and downstream runs.
        corpus_size: ``demo`` (a few minutes to synthesise) or ``tiny``.
        folds: IEMOCAP folds to run (5 = SUPERB's leave-one-session-out; fewer for --quick).
        tasks: downstreams to run, among emotion, phoneme_recognition, fluent_commands.
        baselines: upstreams without pre-training (s3prl's ``fbank``, our ``emoaware_fbank``).
        device: runner ``--device``.
        downstream_workers: runner processes at once for one upstream's downstream runs, each
            with ``cores // workers`` threads (``bench/bench_runner_workers.py``).
        sizes: runner overrides per task.
        strengthnet: shipped StrengthNet recipe; strengthnet_overrides: its overrides.
        strengthnet_corpus: layout of StrengthNet's training corpus (generated with seed + 2).
        pretrain: the pre-trained upstreams.
        lr_search: task -> learning rates tried for every upstream, the best kept per upstream on
            the dev split (SUPERB's protocol; the test split never chooses). A task not named here
            runs once with the rate of its ``sizes`` override (or its config's).
    """

    seed: int = 0
    corpus_size: str = "demo"
    folds: int = 5
    tasks: List[str] = field(default_factory=lambda: ["emotion", "phoneme_recognition", "fluent_commands"])
    baselines: List[str] = field(default_factory=lambda: ["fbank", "emoaware_fbank"])
    device: str = "cpu"
    downstream_workers: int = 2
    sizes: DownstreamSizes = field(default_factory=DownstreamSizes)
    strengthnet: str = "strengthnet_small"
    strengthnet_overrides: List[str] = field(default_factory=list)
    strengthnet_corpus: str = "esd"
    speaker_encoder: str = "ecapa_speaker_tiny"
    speaker_encoder_overrides: List[str] = field(default_factory=list)
    clusters_per_speaker: int = 4
    cluster_min_utterances: int = 8
    pretrain: List[PretrainSpec] = field(default_factory=list)
    lr_search: Dict[str, List[float]] = field(default_factory=dict)

    def __post_init__(self):
        if self.downstream_workers < 1:
            raise ValueError(f"downstream_workers must be >= 1, got {self.downstream_workers}")


def load_demo_config(quick: bool, overrides: Optional[List[str]] = None) -> DemoConfig:
    return load_job_config(DemoConfig, "quick.yaml" if quick else "full.yaml", overrides, "demo config")


def _corpus_paths(out: Path) -> Dict[str, Path]:
    return {
        "iemocap": out / "corpora" / "iemocap",
        "librispeech": out / "corpora" / "librispeech",
        "fsc": out / "corpora" / "fsc",
        "pretrain": out / "corpora" / "pretrain_iemocap",
        "voxceleb": out / "corpora" / "voxceleb",
        "strengthnet": out / "corpora" / "strengthnet_corpus",
    }


def superb_tasks(
    tasks: List[str],
    sizes: DownstreamSizes,
    folds: int,
    corpora: Dict[str, Path],
    lr_search: Optional[Dict[str, List[float]]] = None,
) -> List[TaskSpec]:
    """The runner runs of the SUPERB columns (emotion over ``folds`` IEMOCAP folds, phoneme
    recognition, intent classification), each on the corpus of its registry spec's layout
    (``corpora``: layout name -> folder, e.g. ``iemocap``, ``librispeech``, ``fsc``).

    ``lr_search`` (task -> learning rates): such a task runs once per rate, in
    ``<task>/lr<rate>``, as candidates of one search; the run with the best dev score is kept per
    upstream (SUPERB's protocol: the learning rate is searched per upstream and task on dev)."""
    from ..config import shipped_config
    from ..downstreams.registry import require
    from ..s3prl_adapters.runner import merge_override

    lr_search = lr_search or {}
    # a search for a task this run leaves out (e.g. -o 'tasks=[emotion]') is simply unused; an unknown name is a typo
    unknown = sorted(t for t in lr_search if getattr(sizes, t, None) is None)
    if unknown:
        raise ValueError(f"lr_search names unknown SUPERB tasks {unknown}; choose among {sorted(vars(sizes))}")

    specs: List[TaskSpec] = []
    for task in tasks:
        size = getattr(sizes, task, None)
        if size is None:
            raise ValueError(
                f"unknown SUPERB task {task!r}; choose among emotion, phoneme_recognition, fluent_commands"
            )
        spec = require(task)
        roots = spec.root_override(corpora[spec.corpus])
        config = str(shipped_config("downstream_configs", spec.config_name))
        task_folds = folds if spec.fold_key else 0
        rates = lr_search.get(task) or []
        if any(not (lr > 0) for lr in rates) or len(set(rates)) != len(rates):
            raise ValueError(f"lr_search.{task}: learning rates must be distinct and > 0, got {rates}")
        if len(rates) < 2:  # nothing to choose between: one run with the rate (if given) in its override
            override = (
                merge_override(f"{roots},,{size}", f"config.optimizer.lr={rates[0]}") if rates else f"{roots},,{size}"
            )
            specs.append(TaskSpec(task, config, override, folds=task_folds))
            continue
        for lr in rates:
            override = merge_override(f"{roots},,{size}", f"config.optimizer.lr={lr}")
            specs.append(TaskSpec(task, config, override, folds=task_folds, folder=f"{task}/lr{lr:g}", search=task))
    return specs


def _task_specs(cfg: DemoConfig, out: Path) -> List[TaskSpec]:
    return superb_tasks(cfg.tasks, cfg.sizes, cfg.folds, _corpus_paths(out), cfg.lr_search)


def _synthesise(cfg: DemoConfig, out: Path) -> dict:
    special = {"pretrain": ("iemocap", cfg.seed + 1), "strengthnet": (cfg.strengthnet_corpus, cfg.seed + 2)}
    return synthesize_missing(corpus_plan(_corpus_paths(out), cfg.seed, special), cfg.corpus_size)


def _train_strengthnet(cfg: DemoConfig, out: Path) -> dict:
    from .steps import train_shipped_strengthnet

    # judged on the pre-training corpus too (its sidecar says where the emotion is), never trained on it
    corpora = _corpus_paths(out)
    return train_shipped_strengthnet(
        cfg.strengthnet, cfg.strengthnet_overrides, corpora["strengthnet"], out / "strengthnet", [corpora["pretrain"]]
    )


def _extract(out: Path) -> dict:
    from ..intensity.cache import discard_other_checkpoint_cache
    from ..intensity.extract import extract_intensities

    pretrain = _corpus_paths(out)["pretrain"]
    checkpoint = out / "strengthnet" / "strengthnet.ckpt"
    discard_other_checkpoint_cache(out / "intensity", checkpoint)  # `--redo strengthnet intensity`
    counts = extract_intensities(pretrain, out / "intensity", model_path=str(checkpoint))
    return {**counts, "distribution": describe_intensities(out / "intensity", pretrain)}


def _recipe_kind(spec: PretrainSpec) -> str:
    from ..config import load_yaml, shipped_config

    return load_yaml(shipped_config("upstream_configs", spec.config)).get("kind", "mockingjay")


def _train_speaker_encoder(cfg: DemoConfig, out: Path) -> dict:
    # many neutral speakers, as real speaker encoders are trained (see synth's voxceleb layout)
    return train_speaker_encoder(
        cfg.speaker_encoder, cfg.speaker_encoder_overrides, _corpus_paths(out)["voxceleb"], out
    )


def _cluster(cfg: DemoConfig, out: Path) -> dict:
    return cluster_speakers(_corpus_paths(out)["pretrain"], out, cfg.clusters_per_speaker, cfg.cluster_min_utterances)


def _recipe(spec: PretrainSpec, out: Path):
    from ..config import load_config, shipped_config
    from ..pretraining.trainer import PretrainRecipe

    extra = [f"masking.strategy={spec.masking}"]
    if _recipe_kind(spec) == "ecapa_contrastive":
        extra = [
            f"objective.clusters={out / 'clusters' / 'assignments.json'}",
            f"objective.init_from={out / 'speaker_encoder' / 'last.ckpt'}",
        ]
    return load_config(PretrainRecipe, shipped_config("upstream_configs", spec.config), [*spec.overrides, *extra])


def _pretrain(spec: PretrainSpec, out: Path) -> dict:
    from ..pretraining.run import pretrain

    recipe = _recipe(spec, out)
    cache = str(out / "intensity") if recipe_needs_intensity(recipe) else None
    _, history = pretrain(recipe, _corpus_paths(out)["pretrain"], out / "pretrain" / spec.label, cache)
    return {"steps": len(history), "first_loss": history[0][1], "last_loss": history[-1][1]}


def build_stages(cfg: DemoConfig, out: Path) -> List[Stage]:
    stages = [
        Stage(
            "corpora",
            "synthesise IEMOCAP, LibriSpeech, FSC and VoxCeleb layouts with espeak-ng",
            lambda: _synthesise(cfg, out),
        )
    ]
    if any(_recipe_kind(spec) == "ecapa_contrastive" for spec in cfg.pretrain):
        stages += [
            Stage(
                "speaker_encoder",
                f"train the ECAPA speaker encoder ({cfg.speaker_encoder}) on speaker labels",
                lambda: _train_speaker_encoder(cfg, out),
            ),
            Stage(
                "clusters",
                "intra-speaker clusters of the pre-training corpus's speaker embeddings",
                lambda: _cluster(cfg, out),
            ),
        ]
    if any(recipe_needs_intensity(_recipe(spec, out)) for spec in cfg.pretrain):  # as each task says
        stages += [
            Stage(
                "strengthnet",
                f"train StrengthNet ({cfg.strengthnet}) on the {cfg.strengthnet_corpus} corpus",
                lambda: _train_strengthnet(cfg, out),
            ),
            Stage(
                "intensity",
                "StrengthNet intensities of the pre-training corpus, on the fbank grid",
                lambda: _extract(out),
            ),
        ]
    for spec in cfg.pretrain:
        how = (
            "contrastive, pairs from the intra-speaker clusters"
            if _recipe_kind(spec) == "ecapa_contrastive"
            else f"{spec.masking} masking"
        )
        stages.append(
            Stage(f"pretrain_{spec.label}", f"pre-train {spec.config} ({how})", lambda spec=spec: _pretrain(spec, out))
        )
    tasks = _task_specs(cfg, out)
    upstreams = [UpstreamSpec(label=name, upstream=name) for name in cfg.baselines]
    upstreams += [
        UpstreamSpec(label=spec.label, upstream=spec.upstream, ckpt=str(out / "pretrain" / spec.label / "last.ckpt"))
        for spec in cfg.pretrain
    ]
    for up in upstreams:
        stages.append(
            Stage(
                f"downstream_{up.label}",
                f"SUPERB runs ({', '.join(cfg.tasks)}) for {up.label}",
                lambda up=up: run_upstream(up, tasks, out / "downstream", cfg.device, workers=cfg.downstream_workers),
            )
        )
    stages.append(
        Stage("leaderboard", "collect every runner experiment into the leaderboard", lambda: _leaderboard(out))
    )
    return stages


def _leaderboard(out: Path) -> dict:
    from .. import leaderboard

    table = leaderboard.aggregate(leaderboard.collect([out / "downstream"]))
    paths = leaderboard.write_all(table, out / "leaderboard")
    return {k: str(v) for k, v in paths.items()}


def run_demo(out: Path, quick: bool = False, redo: List[str] = (), overrides: Optional[List[str]] = None) -> str:
    """Run (or finish) the demo into ``out``; return the leaderboard and stage times as Markdown."""
    from ..utils.atomic import atomic_write_text, ensure_writable_dir
    from ..utils.locks import folder_lock

    out = ensure_writable_dir(out).resolve()
    cfg = load_demo_config(quick, overrides)
    # one demo per folder: a second one would run the same stages into the same files
    with folder_lock(out, "demo output folder"):
        done = run_stages(build_stages(cfg, out), out, redo)
        report = (
            "## Leaderboard\n\n"
            + (out / "leaderboard" / "leaderboard.md").read_text()
            + "\n## Stage times (seconds, this machine)\n\n"
            + stage_times(done)
        )
        atomic_write_text(out / "REPORT.md", report)
    return report
