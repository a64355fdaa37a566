"""``s3prl-emoaware ser-study``: few-label SER with the contrastive ECAPA upstream (METHOD section 2).

The question: does contrastive pre-training from intra-speaker clusters give an SER encoder
that needs few labels? Every encoder has the same ECAPA architecture; they differ only in
how their weights were obtained:

- ``random_init``: untrained (what the labels alone can do);
- ``speaker_only``: the AAM-softmax speaker encoder the clusters come from;
- contrastive variants (plain, multi-task, adversarial), started from the speaker encoder
  and trained on the emotion-unlabelled pre-training corpus.

Each is judged through the stock s3prl runner on CREMA-D, ESD and RAVDESS layouts
(speaker-independent splits, frozen upstream, SUPERB's ER model) with a fraction of the
training labels. A single split of a demo-size corpus holds a few dozen test clips, so
every (corpus, label fraction) is run on several speaker splits, each with its own label
subset (``datarc.seed``); the report gives mean and spread of UA/WA over splits and a
paired count (same split, same labelled clips) of how often each encoder beats the others.

Stages (resumable, like the demo): corpora, speaker_encoder, clusters, pretrain_<label>,
random_init, ser_<label>, report.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .downstream import TaskSpec, UpstreamSpec, run_upstream
from .stages import Stage, run_stages, stage_times
from .steps import cluster_speakers, corpus_plan, load_job_config, synthesise_missing, train_speaker_encoder

logger = logging.getLogger(__name__)

__all__ = ["SerStudyConfig", "EncoderSpec", "build_stages", "run_ser_study", "summarise"]

SER_CORPORA = ("cremad", "esd", "ravdess")


@dataclass
class EncoderSpec:
    """One row of the study.

    Attributes:
        label: row name and folder.
        init: ``random`` (untrained), ``speaker`` (the speaker encoder itself) or ``contrastive``.
        overrides: recipe overrides of the contrastive pre-training (``objective.speaker_weight=0.5`` ...).
    """

    label: str
    init: str
    overrides: List[str] = field(default_factory=list)

    def __post_init__(self):
        if self.init not in ("random", "speaker", "contrastive"):
            raise ValueError(f"encoder {self.label!r}: init must be random, speaker or contrastive, got {self.init!r}")


@dataclass
class SerStudyConfig:
    """Fields of ``s3prl_emoaware/demo/configs/ser_study{,_quick}.yaml``.

    Attributes:
        seed: corpora and pre-training seed.
        corpus_size: ``demo`` or ``tiny`` (synth-corpus sizes).
        corpora: SER corpora to judge on (cremad, esd, ravdess).
        label_fractions: training-label fractions (class-stratified).
        splits: speaker splits per (corpus, fraction): ``datarc.seed`` 0..splits-1, which also
            draws the labelled subset.
        speaker_corpus: layout of the speaker encoder's training corpus. ``voxceleb``: many
            speakers, neutral speech, as real speaker encoders are trained; an encoder trained on
            emotional speech learns to ignore emotion (weaker clusters, see README).
        pretrain_corpus: layout of the emotion-unlabelled pre-training corpus (generated with
            seed + 1, so its speakers' pitch offsets and sentences differ from the SER corpora);
            its labels are read only by the clustering analysis. ``esd``: whole-utterance
            emotions; ``iemocap`` adds utterances that turn emotional half-way.
        speaker_encoder / speaker_encoder_overrides: recipe of the speaker encoder.
        contrastive / contrastive_overrides: recipe of every contrastive variant.
        clusters_per_speaker, cluster_min_utterances: of ``s3prl-emoaware cluster``.
        downstream: runner overrides (s3prl ``-o``) that size each SER run.
        encoders: the rows.
    """

    seed: int = 0
    corpus_size: str = "demo"
    corpora: List[str] = field(default_factory=lambda: list(SER_CORPORA))
    label_fractions: List[float] = field(default_factory=lambda: [0.1, 1.0])
    splits: int = 10
    speaker_corpus: str = "voxceleb"
    pretrain_corpus: str = "esd"
    speaker_encoder: str = "ecapa_speaker_tiny"
    speaker_encoder_overrides: List[str] = field(default_factory=list)
    contrastive: str = "emo_ecapa_tiny"
    contrastive_overrides: List[str] = field(default_factory=list)
    clusters_per_speaker: int = 4
    cluster_min_utterances: int = 8
    device: str = "cpu"
    downstream: str = ("config.runner.total_steps=150,,config.runner.eval_step=50,,config.runner.save_step=50,,"
                       "config.runner.log_step=50,,config.runner.gradient_accumulate_steps=1,,"
                       "config.optimizer.lr=1.0e-3,,config.downstream_expert.datarc.num_workers=0")
    encoders: List[EncoderSpec] = field(default_factory=list)

    def __post_init__(self):
        unknown = [c for c in self.corpora if c not in SER_CORPORA]
        if unknown:
            raise ValueError(f"corpora: unknown {unknown}; choose among {list(SER_CORPORA)}")
        if self.splits < 1:
            raise ValueError("splits must be >= 1")
        from ..corpora.synth import KINDS

        for key in ("speaker_corpus", "pretrain_corpus"):
            if getattr(self, key) not in KINDS:
                raise ValueError(f"{key}: unknown corpus kind {getattr(self, key)!r}; choose among {list(KINDS)}")


def load_study_config(quick: bool, overrides: Optional[List[str]] = None) -> SerStudyConfig:
    return load_job_config(SerStudyConfig, "ser_study_quick.yaml" if quick else "ser_study.yaml", overrides,
                           "ser-study config")


def _corpora(out: Path, cfg: SerStudyConfig) -> Dict[str, Path]:
    paths = {"speaker": out / "corpora" / f"speaker_{cfg.speaker_corpus}",
             "pretrain": out / "corpora" / f"pretrain_{cfg.pretrain_corpus}"}
    paths.update({name: out / "corpora" / name for name in cfg.corpora})
    return paths


def _synthesise(cfg: SerStudyConfig, out: Path) -> dict:
    special = {"speaker": (cfg.speaker_corpus, cfg.seed), "pretrain": (cfg.pretrain_corpus, cfg.seed + 1)}
    return synthesise_missing(corpus_plan(_corpora(out, cfg), cfg.seed, special), cfg.corpus_size)


def _recipe(name: str, overrides: List[str]):
    from ..config import load_config, shipped_config
    from ..pretraining.trainer import PretrainRecipe

    return load_config(PretrainRecipe, shipped_config("upstream_configs", name), overrides)


def _train_speaker_encoder(cfg: SerStudyConfig, out: Path) -> dict:
    return train_speaker_encoder(cfg.speaker_encoder, cfg.speaker_encoder_overrides, _corpora(out, cfg)["speaker"],
                                 out, cfg.device)


def _cluster(cfg: SerStudyConfig, out: Path) -> dict:
    return cluster_speakers(_corpora(out, cfg)["pretrain"], out, cfg.clusters_per_speaker, cfg.cluster_min_utterances)


def _pretrain(cfg: SerStudyConfig, spec: EncoderSpec, out: Path) -> dict:
    from ..pretraining.run import pretrain

    recipe = _recipe(cfg.contrastive, [*cfg.contrastive_overrides, *spec.overrides,
                                       f"objective.clusters={out / 'clusters' / 'assignments.json'}",
                                       f"objective.init_from={out / 'speaker_encoder' / 'last.ckpt'}"])
    _, history = pretrain(recipe, _corpora(out, cfg)["pretrain"], out / "pretrain" / spec.label, None,
                          device=cfg.device)
    return {"steps": len(history), "first_loss": history[0][1], "last_loss": history[-1][1]}


def _random_init(cfg: SerStudyConfig, out: Path) -> dict:
    """The speaker-encoder architecture saved before any training step (seeded by the recipe)."""
    from ..corpora.reader import read_corpus
    from ..pretraining.data import build_dataset
    from ..pretraining.tasks import build_task
    from ..pretraining.trainer import Trainer

    recipe = _recipe(cfg.speaker_encoder, cfg.speaker_encoder_overrides)
    task = build_task(recipe.kind, recipe.model, recipe.masking, recipe.frontend.feature_dim, recipe.objective)
    dataset = build_dataset(read_corpus(_corpora(out, cfg)["speaker"]), recipe.frontend)
    trainer = Trainer(task, dataset, recipe, out / "random_init", cfg.device)
    trainer.save()
    return {"path": str(out / "random_init" / "last.ckpt")}


def checkpoint_of(spec: EncoderSpec, out: Path) -> Path:
    return {"random": out / "random_init", "speaker": out / "speaker_encoder"}.get(
        spec.init, out / "pretrain" / spec.label) / "last.ckpt"


def _fraction_name(fraction: float) -> str:
    return f"labels{fraction:g}"


def ser_tasks(cfg: SerStudyConfig, out: Path) -> List[TaskSpec]:
    """One runner run per (corpus, label fraction, split), each in its own folder."""
    from ..config import shipped_config

    tasks = []
    for corpus in cfg.corpora:
        root = _corpora(out, cfg)[corpus]
        for fraction in cfg.label_fractions:
            for split in range(cfg.splits):
                override = (f"config.downstream_expert.datarc.root='{root}',,"
                            f"config.downstream_expert.datarc.label_fraction={fraction},,"
                            f"config.downstream_expert.datarc.seed={split},,{cfg.downstream}")
                tasks.append(TaskSpec(f"emotion_{corpus}", str(shipped_config("downstream_configs", f"emotion_{corpus}")),
                                      override, folder=f"{corpus}/{_fraction_name(fraction)}/split{split}"))
    return tasks


def summarise(runs: Path, cfg: SerStudyConfig) -> dict:
    """Mean/spread of UA and WA per (encoder, corpus, fraction), and paired wins between encoders."""
    table: Dict[str, Dict[str, dict]] = {}
    per_split: Dict[str, Dict[str, Dict[int, float]]] = {}
    for spec in cfg.encoders:
        for corpus in cfg.corpora:
            for fraction in cfg.label_fractions:
                column = f"{corpus}/{_fraction_name(fraction)}"
                uas, was = {}, []
                for split in range(cfg.splits):
                    path = runs / spec.label / corpus / _fraction_name(fraction) / f"split{split}" / "test_metrics.json"
                    if not path.is_file():
                        continue
                    metrics = json.loads(path.read_text())
                    uas[split] = metrics["ua"]
                    was.append(metrics["wa"])
                if not uas:
                    continue
                values = list(uas.values())
                table.setdefault(spec.label, {})[column] = {
                    "ua_mean": statistics.fmean(values), "ua_std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                    "wa_mean": statistics.fmean(was), "n": len(values)}
                per_split.setdefault(spec.label, {})[column] = uas
    wins: Dict[str, Dict[str, Dict[str, str]]] = {}
    for a in per_split:
        for b in per_split:
            if a == b:
                continue
            for column, ua_a in per_split[a].items():
                ua_b = per_split[b].get(column, {})
                shared = sorted(set(ua_a) & set(ua_b))
                if shared:
                    better = sum(ua_a[s] > ua_b[s] for s in shared)
                    ties = sum(ua_a[s] == ua_b[s] for s in shared)
                    wins.setdefault(a, {}).setdefault(b, {})[column] = f"{better}/{ties}/{len(shared) - better - ties}"
    baselines = [spec.label for spec in cfg.encoders if spec.init in ("random", "speaker")]
    return {"table": table, "paired_wins_ties_losses": wins, "splits": cfg.splits, "baselines": baselines}


def report_markdown(summary: dict) -> str:
    table = summary["table"]
    columns = sorted({c for row in table.values() for c in row})
    lines = ["| encoder | " + " | ".join(f"{c} UA % (WA %)" for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for label, row in table.items():
        cells = []
        for c in columns:
            s = row.get(c)
            cells.append("-" if s is None else
                         f"{100 * s['ua_mean']:.1f} ± {100 * s['ua_std']:.1f} ({100 * s['wa_mean']:.1f}), n={s['n']}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Mean ± spread over {summary['splits']} speaker splits (each with its own labelled subset).",
              "Paired comparison with the baselines (wins/ties/losses in UA over the same splits and labelled "
              "clips; every pair in ser_study.json):", ""]
    baselines = summary.get("baselines", [])
    for a, others in summary["paired_wins_ties_losses"].items():
        for b, cols in others.items():
            if b in baselines and not (a in baselines and baselines.index(a) < baselines.index(b)):
                lines.append(f"- {a} vs {b}: " + ", ".join(f"{c} {v}" for c, v in sorted(cols.items())))
    return "\n".join(lines) + "\n"


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = summary["table"]
    columns = sorted({c for row in table.values() for c in row})
    labels = list(table)
    x = np.arange(len(columns))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(columns)), 4))
    for i, label in enumerate(labels):
        means = [100 * table[label].get(c, {}).get("ua_mean", np.nan) for c in columns]
        stds = [100 * table[label].get(c, {}).get("ua_std", 0.0) for c in columns]
        ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=stds, label=label, capsize=2)
    ax.set_xticks(x, columns, rotation=20, ha="right")
    ax.set_ylabel("UA (%)")
    ax.axhline(25, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=7)
    ax.set_title("few-label SER, mean over speaker splits")
    fig.tight_layout()
    from ..utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _report(cfg: SerStudyConfig, out: Path) -> dict:
    from ..utils.atomic import atomic_write_json, atomic_write_text

    summary = summarise(out / "ser", cfg)
    atomic_write_json(out / "report" / "ser_study.json", summary)
    atomic_write_text(out / "report" / "ser_study.md", report_markdown(summary))
    _plot(summary, out / "report" / "ser_study.png")
    return {"report": str(out / "report" / "ser_study.md")}


def build_stages(cfg: SerStudyConfig, out: Path) -> List[Stage]:
    stages = [Stage("corpora", "synthesise the speaker, pre-training and SER corpora with espeak-ng",
                    lambda: _synthesise(cfg, out)),
              Stage("speaker_encoder", f"train the speaker encoder ({cfg.speaker_encoder}) on speaker labels",
                    lambda: _train_speaker_encoder(cfg, out)),
              Stage("clusters", "intra-speaker clusters of the pre-training corpus's speaker embeddings",
                    lambda: _cluster(cfg, out))]
    for spec in cfg.encoders:
        if spec.init == "contrastive":
            stages.append(Stage(f"pretrain_{spec.label}", f"contrastive pre-training ({spec.label})",
                                lambda spec=spec: _pretrain(cfg, spec, out)))
    if any(spec.init == "random" for spec in cfg.encoders):
        stages.append(Stage("random_init", "the untrained encoder", lambda: _random_init(cfg, out)))
    tasks = ser_tasks(cfg, out)
    for spec in cfg.encoders:
        up = UpstreamSpec(spec.label, "emo_ecapa_local", str(checkpoint_of(spec, out)))
        stages.append(Stage(f"ser_{spec.label}", f"{len(tasks)} SER runs for {spec.label}",
                            lambda up=up: run_upstream(up, tasks, out / "ser", cfg.device)))
    stages.append(Stage("report", "UA/WA over splits and paired wins", lambda: _report(cfg, out)))
    return stages


def run_ser_study(out: Path, quick: bool = False, redo: List[str] = (), overrides: Optional[List[str]] = None) -> str:
    """Run (or finish) the study into ``out``; return the report and stage times as Markdown."""
    from ..utils.atomic import atomic_write_text, ensure_writable_dir

    out = ensure_writable_dir(out).resolve()
    cfg = load_study_config(quick, overrides)
    done = run_stages(build_stages(cfg, out), out, redo, desc="ser-study")
    text = (out / "report" / "ser_study.md").read_text() + "\n" + stage_times(done)
    atomic_write_text(out / "REPORT.md", text)
    return text
