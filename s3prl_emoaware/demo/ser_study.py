"""``s3prl-emoaware ser-study``: few-label SER with the contrastive ECAPA upstream (docs/method.md section 2).

The question: does contrastive pre-training from intra-speaker clusters give an SER encoder
that needs few labels, and does it gain from more unlabelled speech? Every ECAPA row has the
same architecture; they differ only in how their weights were obtained:

- ``random_init``: untrained (what the labels alone can do);
- ``speaker_only``: the AAM-softmax speaker encoder the clusters come from;
- contrastive variants (plain, multi-task, adversarial), started from the speaker encoder
  and trained on the emotion-unlabelled pre-training corpus;
- SSL rows beside them (``ssl_rows``): our Mockingjay and NPC pre-trained on the same
  unlabelled audio (random masking and EMS), with the EMS study's pre-training function. EMS
  rows read StrengthNet intensities (the EMS study's recipe, trained on an ESD-layout corpus
  of its own: another seed, speakers never those of the SER corpora) or the ``energy`` proxy.

Every row is pre-trained with each seed of ``seeds`` (the speaker encoder, its clusters, the
contrastive runs and the untrained init all follow the seed), and each (seed, corpus, label
fraction) is judged on ``splits`` speaker splits, each with its own label subset. The report
gives mean and spread over seeds x splits and the paired difference (same seed, same split)
to speaker-only and to random init with a 95 % two-stage bootstrap interval (seeds, then splits) and wins/ties/losses.

The unlabelled-data curve: the pre-training corpus is generated at each scale of
``unlabeled_scales`` (ESD layout; along ``scale_axis: speakers`` 10 x scale speakers, the larger
corpora adding new speakers and a scale below 1 keeping the first of the 1x corpus's voices; along
``utterances`` the 1x corpus's 10 speakers with scale x 8 utterances per emotion each),
the contrastive rows are pre-trained on each, and their gain over speaker-only at
``curve_fraction`` labels is drawn against the hours of unlabelled audio. The corpora stage
refuses to go on if a pre-training speaker (voice and pitch offset of the generator) is one
of an SER corpus's.

Stages (resumable, like the demo): corpora; then, ``stage_workers`` at a time in processes of
their own, ssl_strengthnet, speaker_encoder_s<seed> and random_init_s<seed>; then
ssl_intensity_<source> and clusters_x<scale>_s<seed>; then every pretrain_<run> (ssl_* only when
an SSL row reads that intensity); then ser_s<seed> (runner processes of their own,
``downstream_workers``) and report. A runner run whose test evaluation finished is kept when a
killed ser_s<seed> stage is re-run.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..utils.stats import paired_by_seed
from .downstream import TaskSpec, UpstreamSpec, run_upstreams
from .ems_study import BackboneSpec, RowSpec, baseline_of
from .stages import Stage, run_staged_job
from .steps import (
    cluster_speakers,
    corpus_plan,
    load_job_config,
    pretraining_intensities,
    synthesize_missing,
    train_shipped_strengthnet,
    train_speaker_encoder,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SerStudyConfig",
    "EncoderSpec",
    "StudyRun",
    "study_runs",
    "build_stages",
    "run_ser_study",
    "summarise",
    "generated_voices",
    "check_new_speakers",
    "contrastive_steps",
]

SER_CORPORA = ("cremad", "esd", "ravdess")
# speakers of the generated ESD layout at its default (the 1x corpus), per synth-corpus size
BASE_PRETRAIN_SPEAKERS = {"tiny": 4, "demo": 10}
RELEASE_ESD_SPEAKERS = 20  # an ESD folder with more speaker ids than the release's is read whole
SSL_INTENSITIES = ("none", "energy", "strengthnet")
SCALE_BUDGETS = ("fixed", "epochs")
SCALE_AXES = ("speakers", "utterances")
ECAPA_FEATURES = ("hidden_states", "utterance_embedding")


@dataclass
class EncoderSpec:
    """One ECAPA row of the study.

    Attributes:
        label: row name and folder.
        init: ``random`` (untrained), ``speaker`` (the speaker encoder itself) or ``contrastive``.
        overrides: recipe overrides of the contrastive pre-training (``objective.speaker_weight=0.5`` ...).
        start: where a ``contrastive`` row's pre-training starts: ``speaker`` (the speaker encoder
            of its seed, the paper's set-up) or ``random`` (the untrained encoder of the
            ``random_init`` row, same seed), so that its difference to random init is what the
            contrastive training alone adds.
    """

    label: str
    init: str
    overrides: List[str] = field(default_factory=list)
    start: str = "speaker"

    def __post_init__(self):
        if self.init not in ("random", "speaker", "contrastive"):
            raise ValueError(f"encoder {self.label!r}: init must be random, speaker or contrastive, got {self.init!r}")
        if self.start not in ("speaker", "random"):
            raise ValueError(f"encoder {self.label!r}: start must be speaker or random, got {self.start!r}")
        if self.start != "speaker" and self.init != "contrastive":
            raise ValueError(f"encoder {self.label!r}: start applies to contrastive rows only (init: {self.init})")


@dataclass
class SerStudyConfig:
    """Fields of ``s3prl_emoaware/demo/configs/ser_study{,_quick,_knob}.yaml``.

    Attributes:
        seed: seed of the generated corpora (SER corpora ``seed``, pre-training corpora
            ``seed + 1``, the SSL rows' StrengthNet corpus ``seed + 2``). Knobs (multi-task
            ``combine``) are chosen with another seed (``ser_study_knob.yaml``: seed 100), never
            on the reported splits.
        seeds: pre-training seeds (``training.seed`` of the speaker encoder, the contrastive
            and SSL runs, and of the untrained init); each crosses every split.
        corpus_size: ``demo`` or ``tiny`` (synth-corpus sizes).
        corpora: SER corpora to judge on (cremad, esd, ravdess).
        label_fractions: training-label fractions (class-stratified) of the table.
        splits: speaker splits per (seed, corpus, fraction): ``datarc.seed`` 0..splits-1, which
            also draws the labelled subset.
        speaker_corpus: layout of the speaker encoder's training corpus. ``voxceleb``: many
            speakers, neutral speech, as real speaker encoders are trained.
        pretrain_corpus: layout of the emotion-unlabelled pre-training corpus; its labels are
            read only by the clustering analysis (and StrengthNet's figures on it). Scales above 1
            need ``esd``.
        unlabeled_scales: sizes of the pre-training corpus (1 = 10 speakers x 32 utterances, 8
            per emotion, at demo size; along ``scale_axis: speakers`` 4 = 40 speakers ..., 0.2 =
            2 speakers, the 1x corpus's first two voices with other sentences). The table is at
            the first; the others feed the curve. Above 1 a scale is an integer; below, it must
            give a whole number of speakers (of utterances per emotion along ``utterances``).
        scale_axis: what a larger corpus adds. ``speakers``: new speakers, each with the 1x
            corpus's utterances per speaker; ``utterances``: the 1x corpus's speakers (same voices
            and pitch offsets) with scale x as many utterances each (the release has 350 per
            speaker and emotion). The intra-speaker clusters are drawn per speaker, so the two
            axes feed them differently: more speakers give more clusters of the same size, more
            utterances give each speaker's clusters more members.
        curve_fraction: label fraction of the unlabelled-data curve (larger scales run only it).
        curve_encoders: contrastive rows pre-trained at the scales after the first (empty: all).
        scale_budget: contrastive steps at a larger scale. ``fixed``: the recipe's steps at every
            scale, so a 16x corpus is seen for a sixteenth of the epochs ("more diverse audio at
            the same compute"); ``epochs``: steps grow with the corpus (``steps x scale / first
            scale``), so every scale is seen for the same number of epochs ("more audio, trained
            as long"). The paper says neither; see docs/method.md section 2.
        speaker_encoder / speaker_encoder_overrides: recipe of the speaker encoder.
        contrastive / contrastive_overrides: recipe of every contrastive variant.
        clusters_per_speaker, cluster_min_utterances: of ``s3prl-emoaware cluster``.
        ecapa_feature: what the SER downstream reads of every ECAPA row (runner ``-s``):
            ``hidden_states`` (the blocks' frame-level outputs, weighted by the featurizer) or
            ``utterance_embedding`` (the pooled embedding the speaker and contrastive objectives
            train, repeated over the frames).
        downstream: runner overrides (s3prl ``-o``) that size each SER run.
        downstream_workers: runner processes at once for the SER runs, each with ``cores //
            workers`` threads (a small downstream keeps one core busy, not two;
            ``bench/bench_runner_workers.py``). Results equal a single process's.
        stage_workers: processes at once for the stages that need none of each other's outputs
            (speaker encoders, untrained inits and StrengthNet; clusters and intensities; every
            pre-training), each a fresh process with ``cores // workers`` threads. 1: one stage
            at a time in this process. A pre-training's result depends on its thread count (float
            sums in another order), not on which stages run beside it.
        encoders: the ECAPA rows.
        ssl_backbones, ssl_rows: SSL rows (the EMS study's :class:`BackboneSpec` / :class:`RowSpec`;
            intensity ``none``, ``strengthnet`` or ``energy``), pre-trained on the first scale's corpus.
        strengthnet / strengthnet_overrides: StrengthNet recipe of the ``strengthnet`` SSL rows
            (as in the EMS study), trained on a generated ``strengthnet_corpus`` (cremad, esd or
            ravdess layout: the layouts whose speakers are checked against the SER corpora's).
        bootstrap: resamples of the paired bootstrap.
    """

    seed: int = 0
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    corpus_size: str = "demo"
    corpora: List[str] = field(default_factory=lambda: list(SER_CORPORA))
    label_fractions: List[float] = field(default_factory=lambda: [0.1, 1.0])
    splits: int = 10
    speaker_corpus: str = "voxceleb"
    pretrain_corpus: str = "esd"
    unlabeled_scales: List[float] = field(default_factory=lambda: [1])
    curve_fraction: float = 0.1
    curve_encoders: List[str] = field(default_factory=list)
    scale_budget: str = "fixed"
    scale_axis: str = "speakers"
    speaker_encoder: str = "ecapa_speaker_tiny"
    speaker_encoder_overrides: List[str] = field(default_factory=list)
    contrastive: str = "emo_ecapa_tiny"
    contrastive_overrides: List[str] = field(default_factory=list)
    clusters_per_speaker: int = 4
    cluster_min_utterances: int = 8
    ecapa_feature: str = "hidden_states"
    device: str = "cpu"
    downstream_workers: int = 2
    stage_workers: int = 2
    downstream: str = (
        "config.runner.total_steps=150,,config.runner.eval_step=50,,config.runner.save_step=50,,"
        "config.runner.log_step=50,,config.runner.gradient_accumulate_steps=1,,"
        "config.optimizer.lr=1.0e-3,,config.downstream_expert.datarc.num_workers=0"
    )
    encoders: List[EncoderSpec] = field(default_factory=list)
    ssl_backbones: List[BackboneSpec] = field(default_factory=list)
    ssl_rows: List[RowSpec] = field(default_factory=list)
    strengthnet: str = "strengthnet_small"
    strengthnet_overrides: List[str] = field(default_factory=list)
    strengthnet_corpus: str = "esd"
    bootstrap: int = 10000

    def __post_init__(self):
        unknown = [c for c in self.corpora if c not in SER_CORPORA]
        if unknown:
            raise ValueError(f"corpora: unknown {unknown}; choose among {list(SER_CORPORA)}")
        if self.splits < 1:
            raise ValueError("splits must be >= 1")
        for key in ("downstream_workers", "stage_workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: give one or more distinct pre-training seeds, got {self.seeds}")
        from ..corpora.synth import KINDS

        for key in ("speaker_corpus", "pretrain_corpus"):
            if getattr(self, key) not in KINDS:
                raise ValueError(f"{key}: unknown corpus kind {getattr(self, key)!r}; choose among {list(KINDS)}")
        # 1.0 and 1 name the same corpus folder (pretrain_esd_x1)
        self.unlabeled_scales = [int(s) if float(s).is_integer() else float(s) for s in self.unlabeled_scales]
        if (
            not self.unlabeled_scales
            or any(not s > 0 or (s > 1 and not isinstance(s, int)) for s in self.unlabeled_scales)
            or len(set(self.unlabeled_scales)) != len(self.unlabeled_scales)
        ):
            raise ValueError(
                f"unlabeled_scales: distinct sizes, integers from 1 up, or fractions below 1, got {self.unlabeled_scales}"
            )
        if self.ecapa_feature not in ECAPA_FEATURES:
            raise ValueError(f"ecapa_feature: choose among {list(ECAPA_FEATURES)}, got {self.ecapa_feature!r}")
        if self.scale_budget not in SCALE_BUDGETS:
            raise ValueError(f"scale_budget: choose among {list(SCALE_BUDGETS)}, got {self.scale_budget!r}")
        if self.scale_axis not in SCALE_AXES:
            raise ValueError(f"scale_axis: choose among {list(SCALE_AXES)}, got {self.scale_axis!r}")
        if self.unlabeled_scales != [1] and self.pretrain_corpus != "esd":
            raise ValueError(
                "unlabeled_scales other than [1] need pretrain_corpus: esd (the layout with a speaker count)"
            )
        base, unit = _scale_unit(self)
        uneven = [s for s in self.unlabeled_scales if s < 1 and not math.isclose(s * base, round(s * base))]
        if uneven:
            raise ValueError(
                f"unlabeled_scales {uneven}: a scale below 1 must give a whole number of {unit} "
                f"({base} at scale 1, corpus_size {self.corpus_size})"
            )
        small = [
            s
            for s in self.unlabeled_scales
            if self.scale_axis == "speakers" and s > 1 and s * base <= RELEASE_ESD_SPEAKERS
        ]
        if small:
            raise ValueError(
                f"unlabeled_scales {small}: at corpus_size {self.corpus_size} a scale above 1 must give more "
                f"than {RELEASE_ESD_SPEAKERS} speakers ({base} per scale), else the ESD reader takes the "
                "folder for the release and reads only its English ids"
            )
        labels = [e.label for e in self.encoders] + [r.label for r in self.ssl_rows]
        if len(set(labels)) != len(labels):
            raise ValueError(f"encoders and ssl_rows: labels must be unique, got {labels}")
        contrastive = {e.label for e in self.encoders if e.init == "contrastive"}
        if set(self.curve_encoders) - contrastive:
            raise ValueError(
                f"curve_encoders: {sorted(set(self.curve_encoders) - contrastive)} are not contrastive "
                f"encoders ({sorted(contrastive)})"
            )
        names = {b.name for b in self.ssl_backbones}
        for row in self.ssl_rows:
            if row.backbone not in names:
                raise ValueError(f"ssl row {row.label!r}: unknown backbone {row.backbone!r}; known: {sorted(names)}")
            if row.intensity not in SSL_INTENSITIES:
                raise ValueError(
                    f"ssl row {row.label!r}: intensity must be one of {SSL_INTENSITIES}, got {row.intensity!r}"
                )
        if self.strengthnet_corpus not in SER_CORPORA:
            raise ValueError(
                f"strengthnet_corpus: {self.strengthnet_corpus!r} cannot be checked for new speakers; "
                f"choose among {list(SER_CORPORA)}"
            )
        if self.bootstrap < 100:
            raise ValueError("bootstrap must be >= 100")


def load_study_config(quick: bool, overrides: Optional[List[str]] = None, name: Optional[str] = None) -> SerStudyConfig:
    """``ser_study.yaml`` (``ser_study_quick.yaml`` with ``quick``; ``ser_study_<name>.yaml`` with ``name``)."""
    filename = f"ser_study_{name}.yaml" if name else ("ser_study_quick.yaml" if quick else "ser_study.yaml")
    return load_job_config(SerStudyConfig, filename, overrides, "ser-study config")


@dataclass(frozen=True)
class StudyRun:
    """One pre-trained (or untrained) encoder: a row at one seed (and corpus scale).

    Attributes:
        row: table row (``contrastive``; ``contrastive@4x`` at a scale other than the first).
        label: the encoder or SSL row it comes from.
        kind: ``random``, ``speaker``, ``contrastive`` or ``ssl``.
        seed: pre-training seed.
        scale: unlabelled-corpus scale (None: the row does not read the unlabelled corpus).
        fractions: the label fractions it is judged at.
    """

    row: str
    label: str
    kind: str
    seed: int
    scale: Optional[float]
    fractions: Tuple[float, ...]

    @property
    def name(self) -> str:
        return f"{self.row.replace('@', '_')}_s{self.seed}"


def study_runs(cfg: SerStudyConfig) -> List[StudyRun]:
    """Every (row, seed, scale) of the study, with the label fractions each is judged at."""
    first = cfg.unlabeled_scales[0]
    table, curve = tuple(cfg.label_fractions), (cfg.curve_fraction,)
    runs = []
    for spec in cfg.encoders:
        for seed in cfg.seeds:
            if spec.init != "contrastive":
                runs.append(StudyRun(spec.label, spec.label, spec.init, seed, None, table))
                continue
            for scale in _scales(cfg, spec):
                row = _row_name(cfg, spec.label, scale)
                runs.append(StudyRun(row, spec.label, "contrastive", seed, scale, table if scale == first else curve))
    for ssl in cfg.ssl_rows:
        runs += [StudyRun(ssl.label, ssl.label, "ssl", seed, first, table) for seed in cfg.seeds]
    return runs


def _scales(cfg: SerStudyConfig, spec: EncoderSpec) -> List[float]:
    """The unlabelled-corpus scales a contrastive row is pre-trained at."""
    on_curve = not cfg.curve_encoders or spec.label in cfg.curve_encoders
    return list(cfg.unlabeled_scales) if on_curve else cfg.unlabeled_scales[:1]


def _scale_unit(cfg: SerStudyConfig) -> Tuple[int, str]:
    """What scale 1 holds along ``cfg.scale_axis``, and its unit: (10, "speakers") at demo size."""
    if cfg.scale_axis == "utterances":
        from ..corpora.layouts.esd import default_per_emotion
        from ..corpora.synth import SIZES

        return default_per_emotion(SIZES[cfg.corpus_size]), "utterances per speaker and emotion"
    return BASE_PRETRAIN_SPEAKERS.get(cfg.corpus_size, 10), "speakers"


def _axis_suffix(cfg: SerStudyConfig, scale: float) -> str:
    """``_utts`` on the names of a corpus, its clusters and its rows grown along the utterance axis,
    so that a study folder re-run along the other axis never reads them as its own (the 1x
    corpus is the same on both axes and keeps its names)."""
    return "_utts" if cfg.scale_axis == "utterances" and scale != 1 else ""


def _scale_name(cfg: SerStudyConfig, scale: float) -> str:
    return f"x{scale}{_axis_suffix(cfg, scale)}"


def _row_name(cfg: SerStudyConfig, label: str, scale: float) -> str:
    """Row of contrastive encoder ``label`` pre-trained at ``scale``: the label itself at the first scale."""
    return label if scale == cfg.unlabeled_scales[0] else f"{label}@{scale}x{_axis_suffix(cfg, scale)}"


def _pretrain_corpus_path(out: Path, cfg: SerStudyConfig, scale: float) -> Path:
    return out / "corpora" / f"pretrain_{cfg.pretrain_corpus}_{_scale_name(cfg, scale)}"


def _corpora(out: Path, cfg: SerStudyConfig) -> Dict[str, Path]:
    paths = {"speaker": out / "corpora" / f"speaker_{cfg.speaker_corpus}"}
    paths.update({name: out / "corpora" / name for name in cfg.corpora})
    return paths


def generated_voices(corpus: Path) -> Set[Tuple[str, float]]:
    """The speakers of a generated CREMA-D / ESD / RAVDESS layout corpus as (espeak voice, pitch
    offset): each of these writers draws its speakers first from its seed's generator
    (:func:`..corpora.synth.emotional_speakers`), so they follow from the corpus's marker and
    its speaker count."""
    import numpy as np

    from ..corpora.reader import read_corpus
    from ..corpora.synth import MARKER, emotional_speakers, read_marker
    from ..utils.errors import UserFacingError

    info = read_marker(corpus)
    if info is None:
        raise UserFacingError(f"{corpus}: not a generated corpus (no {MARKER}); the study generates its own")
    if info["kind"] not in ("cremad", "esd", "ravdess"):
        raise UserFacingError(f"{Path(corpus) / MARKER}: kind {info['kind']!r} has no emotional speakers to compare")
    n = len({u.speaker for u in read_corpus(corpus)})
    return {(voice, round(offset, 9)) for voice, offset in emotional_speakers(n, np.random.default_rng(info["seed"]))}


def check_new_speakers(pretrain: Sequence[Path], ser: Sequence[Path], role: str = "pre-training") -> None:
    """Raise if a speaker of a ``role`` corpus (``pretrain``) is also a speaker of an SER corpus."""
    from ..utils.errors import UserFacingError

    theirs = {v: c for c in ser for v in generated_voices(c)}
    for corpus in pretrain:
        shared = sorted(v for v in generated_voices(corpus) if v in theirs)
        if shared:
            raise UserFacingError(
                f"{corpus}: {len(shared)} {role} speaker(s) also speak in the SER corpus "
                f"{theirs[shared[0]]} (e.g. voice {shared[0][0]}, pitch offset {shared[0][1]:+.3f}); "
                f"generate the {role} corpora with another seed"
            )


def _synthesise(cfg: SerStudyConfig, out: Path) -> dict:
    from ..corpora.synth import synthesize_corpus

    special = {"speaker": (cfg.speaker_corpus, cfg.seed)}
    summary = synthesize_missing(corpus_plan(_corpora(out, cfg), cfg.seed, special), cfg.corpus_size)
    pretrain = []
    for scale in cfg.unlabeled_scales:
        path = _pretrain_corpus_path(out, cfg, scale)
        pretrain.append(path)
        if path.is_dir():
            summary[path.name] = "kept"
            continue
        options = {} if scale == 1 else _scale_options(cfg, scale)
        synthesize_corpus(cfg.pretrain_corpus, path, seed=cfg.seed + 1, size=cfg.corpus_size, **options)
        summary[path.name] = str(path)
    if cfg.pretrain_corpus == "esd":  # every scale is read whole (new speakers, not a subset)
        from ..corpora.reader import read_corpus

        for scale, path in zip(cfg.unlabeled_scales, pretrain):
            n, expected = len({u.speaker for u in read_corpus(path)}), _speakers_at(cfg, scale)
            if n != expected:
                raise RuntimeError(f"{path}: {n} speakers read, {expected} expected for scale {scale}")
    if cfg.pretrain_corpus in ("cremad", "esd", "ravdess"):
        check_new_speakers(pretrain, [_corpora(out, cfg)[c] for c in cfg.corpora])
    summary["pretrain_hours"] = {str(s): _hours(_pretrain_corpus_path(out, cfg, s)) for s in cfg.unlabeled_scales}
    return summary


def _speakers_at(cfg: SerStudyConfig, scale: float) -> int:
    if cfg.scale_axis == "utterances":
        return BASE_PRETRAIN_SPEAKERS[cfg.corpus_size]
    return round(BASE_PRETRAIN_SPEAKERS[cfg.corpus_size] * scale)


def _scale_options(cfg: SerStudyConfig, scale: float) -> dict:
    """The ESD writer's options for the pre-training corpus at ``scale``."""
    if cfg.scale_axis == "utterances":
        return {"utterances_per_emotion": round(_scale_unit(cfg)[0] * scale)}
    return {"speakers": _speakers_at(cfg, scale)}


def _hours(corpus: Path) -> float:
    from ..corpora.reader import read_corpus
    from ..utils.audio import header_samples

    total = 0.0
    for u in read_corpus(corpus):
        samples, rate = header_samples(u.path)
        total += samples / rate
    return total / 3600.0


def _recipe(name: str, overrides: List[str]):
    from ..config import load_config, shipped_config
    from ..pretraining.trainer import PretrainRecipe

    return load_config(PretrainRecipe, shipped_config("upstream_configs", name), overrides)


def _seed_dir(out: Path, seed: int) -> Path:
    """Speaker encoder and its clusters of one seed (``speaker_encoder/``, ``clusters_x<scale>/``)."""
    return out / "encoders" / f"s{seed}"


def _train_speaker_encoder(cfg: SerStudyConfig, seed: int, out: Path) -> dict:
    return train_speaker_encoder(
        cfg.speaker_encoder,
        [*cfg.speaker_encoder_overrides, f"training.seed={seed}"],
        _corpora(out, cfg)["speaker"],
        _seed_dir(out, seed),
        cfg.device,
    )


def _cluster(cfg: SerStudyConfig, seed: int, scale: float, out: Path) -> dict:
    return cluster_speakers(
        _pretrain_corpus_path(out, cfg, scale),
        _seed_dir(out, seed),
        cfg.clusters_per_speaker,
        cfg.cluster_min_utterances,
        folder=f"clusters_{_scale_name(cfg, scale)}",
    )


def _encoder(cfg: SerStudyConfig, label: str) -> EncoderSpec:
    return next(e for e in cfg.encoders if e.label == label)


def contrastive_steps(cfg: SerStudyConfig, label: str, scale: float) -> int:
    """Contrastive pre-training steps of encoder ``label`` at unlabelled-corpus ``scale``
    (``scale_budget``: the recipe's at every scale, or grown with the corpus)."""
    steps = _recipe(cfg.contrastive, [*cfg.contrastive_overrides, *_encoder(cfg, label).overrides]).training.total_steps
    if cfg.scale_budget == "epochs":
        return max(1, round(steps * scale / cfg.unlabeled_scales[0]))
    return steps


def _start_checkpoint(cfg: SerStudyConfig, run: StudyRun, out: Path) -> Path:
    """Where contrastive run ``run`` starts: its seed's speaker encoder, or its untrained encoder."""
    if _encoder(cfg, run.label).start == "random":
        return out / "random_init" / f"s{run.seed}" / "last.ckpt"
    return _seed_dir(out, run.seed) / "speaker_encoder" / "last.ckpt"


def _pretrain(cfg: SerStudyConfig, run: StudyRun, out: Path) -> dict:
    from ..pretraining.run import pretrain

    seed_dir = _seed_dir(out, run.seed)
    recipe = _recipe(
        cfg.contrastive,
        [
            *cfg.contrastive_overrides,
            *_encoder(cfg, run.label).overrides,
            f"training.total_steps={contrastive_steps(cfg, run.label, run.scale)}",
            f"objective.clusters={seed_dir / f'clusters_{_scale_name(cfg, run.scale)}' / 'assignments.json'}",
            f"objective.init_from={_start_checkpoint(cfg, run, out)}",
            f"training.seed={run.seed}",
        ],
    )
    _, history = pretrain(
        recipe, _pretrain_corpus_path(out, cfg, run.scale), out / "pretrain" / run.name, None, device=cfg.device
    )
    return {"steps": len(history), "first_loss": history[0][1], "last_loss": history[-1][1]}


def _random_init(cfg: SerStudyConfig, seed: int, out: Path) -> dict:
    """The speaker-encoder architecture saved before any training step (seeded by ``seed``)."""
    from ..checkpoints import save_untrained
    from ..corpora.reader import read_corpus
    from ..pretraining.data import build_dataset

    recipe = _recipe(cfg.speaker_encoder, [*cfg.speaker_encoder_overrides, f"training.seed={seed}"])
    dataset = build_dataset(read_corpus(_corpora(out, cfg)["speaker"]), recipe.frontend)
    path = save_untrained(recipe, dataset.entries, out / "random_init" / f"s{seed}" / "last.ckpt", cfg.device)
    return {"path": str(path)}


def _ssl_study(cfg: SerStudyConfig):
    """The EMS study's config holding the SSL rows (its pre-training function reads it)."""
    from .ems_study import EmsStudyConfig

    return EmsStudyConfig(
        seed=cfg.seed,
        corpus_size=cfg.corpus_size,
        seeds=list(cfg.seeds),
        device=cfg.device,
        backbones=cfg.ssl_backbones,
        rows=cfg.ssl_rows,
        strengthnet_seeds=None,  # one StrengthNet, in ssl/strengthnet, read by every seed
    )


def _strengthnet_corpus_path(out: Path, cfg: SerStudyConfig) -> Path:
    return out / "corpora" / f"strengthnet_{cfg.strengthnet_corpus}"


def _ssl_strengthnet(cfg: SerStudyConfig, out: Path) -> dict:
    """StrengthNet of the ``strengthnet`` SSL rows, as the EMS study trains it: on a labelled corpus
    of its own (generated here with seed + 2; its speakers checked against the SER corpora's),
    judged on the 1x pre-training corpus too (labels read for that figure only)."""
    path = _strengthnet_corpus_path(out, cfg)
    plan = {"strengthnet": (cfg.strengthnet_corpus, path, cfg.seed + 2)}
    corpus = synthesize_missing(plan, cfg.corpus_size)["strengthnet"]
    check_new_speakers([path], [_corpora(out, cfg)[c] for c in cfg.corpora], role="StrengthNet training")
    metrics = train_shipped_strengthnet(
        cfg.strengthnet,
        cfg.strengthnet_overrides,
        path,
        out / "ssl" / "strengthnet",
        eval_corpora=[_pretrain_corpus_path(out, cfg, cfg.unlabeled_scales[0])],
    )
    return {"corpus": corpus, **metrics}


def _ssl_intensity(cfg: SerStudyConfig, source: str, out: Path) -> dict:
    """``source`` intensities of the 1x pre-training corpus into ``ssl/intensity/<source>`` (where the
    EMS study's pre-training function reads them), with their distribution and histogram."""
    checkpoint = out / "ssl" / "strengthnet" / "strengthnet.ckpt"
    corpus = _pretrain_corpus_path(out, cfg, cfg.unlabeled_scales[0])
    return pretraining_intensities(corpus, out / "ssl" / "intensity", {source}, checkpoint)[source]


def _ssl_pretrain(cfg: SerStudyConfig, run: StudyRun, out: Path) -> dict:
    from .ems_study import _pretrain as ems_pretrain

    row = next(r for r in cfg.ssl_rows if r.label == run.label)
    return ems_pretrain(_ssl_study(cfg), row, run.seed, out / "ssl", _pretrain_corpus_path(out, cfg, run.scale))


def _upstream(cfg: SerStudyConfig, run: StudyRun, out: Path) -> UpstreamSpec:
    if run.kind == "ssl":
        row = next(r for r in cfg.ssl_rows if r.label == run.label)
        backbone = next(b for b in cfg.ssl_backbones if b.name == row.backbone)
        return UpstreamSpec(
            run.name, backbone.upstream, str(out / "ssl" / "pretrain" / f"{row.label}_s{run.seed}" / "last.ckpt")
        )
    ckpt = {
        "random": out / "random_init" / f"s{run.seed}",
        "speaker": _seed_dir(out, run.seed) / "speaker_encoder",
    }.get(run.kind, out / "pretrain" / run.name)
    feature = None if cfg.ecapa_feature == "hidden_states" else cfg.ecapa_feature
    return UpstreamSpec(run.name, "emo_ecapa_local", str(ckpt / "last.ckpt"), feature)


def _fraction_name(fraction: float) -> str:
    return f"labels{fraction:g}"


def ser_tasks(cfg: SerStudyConfig, out: Path, fractions: Optional[Sequence[float]] = None) -> List[TaskSpec]:
    """One runner run per (corpus, label fraction, split), each in its own folder."""
    from ..config import shipped_config

    tasks = []
    for corpus in cfg.corpora:
        root = _corpora(out, cfg)[corpus]
        for fraction in cfg.label_fractions if fractions is None else fractions:
            for split in range(cfg.splits):
                override = (
                    f"config.downstream_expert.datarc.root='{root}',,"
                    f"config.downstream_expert.datarc.label_fraction={fraction},,"
                    f"config.downstream_expert.datarc.seed={split},,{cfg.downstream}"
                )
                tasks.append(
                    TaskSpec(
                        f"emotion_{corpus}",
                        str(shipped_config("downstream_configs", f"emotion_{corpus}")),
                        override,
                        folder=f"{corpus}/{_fraction_name(fraction)}/split{split}",
                    )
                )
    return tasks


def _collect(runs: Path, cfg: SerStudyConfig) -> Dict[str, Dict[str, Dict[Tuple[int, int], dict]]]:
    """{row: {corpus/labelsF: {(seed, split): test metrics}}} of the finished runner runs."""
    found: Dict[str, Dict[str, Dict[Tuple[int, int], dict]]] = {}
    for run in study_runs(cfg):
        for corpus in cfg.corpora:
            for fraction in run.fractions:
                column = f"{corpus}/{_fraction_name(fraction)}"
                for split in range(cfg.splits):
                    path = runs / run.name / corpus / _fraction_name(fraction) / f"split{split}" / "test_metrics.json"
                    if path.is_file():
                        found.setdefault(run.row, {}).setdefault(column, {})[(run.seed, split)] = json.loads(
                            path.read_text()
                        )
    return found


# Key of an SSL row's paired difference to its backbone's random-masking row (``summarise``'s "paired").
SSL_MASKING_KEY = "ssl_random_masking"


def _baselines(cfg: SerStudyConfig) -> Dict[str, str]:
    """{"speaker_only": row, "random_init": row} of the rows the others are paired with."""
    out = {}
    for init, key in (("speaker", "speaker_only"), ("random", "random_init")):
        label = next((e.label for e in cfg.encoders if e.init == init), None)
        if label is not None:
            out[key] = label
    return out


def summarise(runs: Path, cfg: SerStudyConfig) -> dict:
    """Per (row, corpus, fraction): mean/spread of UA and WA over seeds x splits, and the paired
    UA difference to speaker-only and to random init (same seed, same split)."""
    found = _collect(runs, cfg)
    table: Dict[str, Dict[str, dict]] = {}
    paired: Dict[str, Dict[str, Dict[str, dict]]] = {}
    bases = _baselines(cfg)
    ssl_study = _ssl_study(cfg)
    ssl_bases = {row.label: baseline_of(ssl_study, row) for row in cfg.ssl_rows}
    ua = {
        row: {col: {k: m["ua"] for k, m in cells.items()} for col, cells in cols.items()} for row, cols in found.items()
    }
    for row, cols in found.items():
        for column, cells in cols.items():
            values = [m["ua"] for m in cells.values()]
            table.setdefault(row, {})[column] = {
                "ua_mean": statistics.fmean(values),
                "ua_std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                "wa_mean": statistics.fmean(m["wa"] for m in cells.values()),
                "n": len(values),
                "seeds": sorted({s for s, _ in cells}),
            }
            for key, base in bases.items():
                if base == row or base not in ua or column not in ua[base]:
                    continue
                diff = paired_by_seed(ua[row][column], ua[base][column], cfg.bootstrap)
                if diff is not None:
                    paired.setdefault(row, {}).setdefault(column, {})[key] = {"baseline": base, **diff}
            # An SSL EMS row is also paired with its backbone's random-masking row (the EMS study's rule), so
            # "does EMS help few-label SER" gets an interval, not only "does SSL beat the speaker encoder".
            base = ssl_bases.get(row)
            if base in ua and column in ua[base]:
                diff = paired_by_seed(ua[row][column], ua[base][column], cfg.bootstrap)
                if diff is not None:
                    paired.setdefault(row, {}).setdefault(column, {})[SSL_MASKING_KEY] = {"baseline": base, **diff}
    return {
        "table": table,
        "paired": paired,
        "seeds": list(cfg.seeds),
        "splits": cfg.splits,
        "baselines": bases,
        "curve": _curve(cfg, paired),
        "scale_budget": cfg.scale_budget,
        "scale_axis": cfg.scale_axis,
        "curve_steps": {
            e.label: {str(scale): contrastive_steps(cfg, e.label, scale) for scale in _scales(cfg, e)}
            for e in cfg.encoders
            if e.init == "contrastive" and len(_scales(cfg, e)) > 1
        },
    }


def _curve(cfg: SerStudyConfig, paired: dict) -> List[dict]:
    """Gain over speaker-only at ``curve_fraction`` per contrastive encoder, corpus and scale."""
    points = []
    for spec in (e for e in cfg.encoders if e.init == "contrastive" and len(_scales(cfg, e)) > 1):
        for scale in _scales(cfg, spec):
            row = _row_name(cfg, spec.label, scale)
            for corpus in cfg.corpora:
                diff = paired.get(row, {}).get(f"{corpus}/{_fraction_name(cfg.curve_fraction)}", {}).get("speaker_only")
                if diff is not None:
                    points.append({"encoder": spec.label, "scale": scale, "corpus": corpus, **diff})
    return points


def report_markdown(summary: dict, hours: Optional[Dict[str, float]] = None) -> str:
    table, paired = summary["table"], summary["paired"]
    columns = sorted({c for row in table.values() for c in row})
    n_pairs = f"{len(summary['seeds'])} pre-training seeds x {summary['splits']} speaker splits"
    lines = ["| row | " + " | ".join(f"{c} UA % (WA %)" for c in columns) + " |", "|---|" + "---|" * len(columns)]
    for label, row in table.items():
        cells = []
        for c in columns:
            s = row.get(c)
            cells.append(
                "-"
                if s is None
                else f"{100 * s['ua_mean']:.1f} ± {100 * s['ua_std']:.1f} ({100 * s['wa_mean']:.1f}), n={s['n']}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Mean ± spread over {n_pairs} (each split with its own labelled subset).", ""]
    for key in ("speaker_only", "random_init", SSL_MASKING_KEY):
        base = summary["baselines"].get(key, "its backbone's random-masking row" if key == SSL_MASKING_KEY else None)
        rows = [r for r in paired if any(key in paired[r].get(c, {}) for c in columns)]
        if base is None or not rows:
            continue
        lines += [
            f"Paired UA difference to {base} (same seed and split; points, 95 % two-stage bootstrap interval "
            f"over {n_pairs}: seeds resampled, then the splits of each drawn seed; wins/ties/losses):",
            "",
            "| row | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for r in rows:
            cells = []
            for c in columns:
                d = paired[r].get(c, {}).get(key)
                cells.append(
                    "-"
                    if d is None
                    else f"{100 * d['mean_diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, "
                    f"{100 * d['ci95'][1]:+.1f}] {d['wins_ties_losses']}"
                )
            name = r
            if key == SSL_MASKING_KEY:
                name = f"{r} − {next(paired[r][c][key]['baseline'] for c in columns if key in paired[r].get(c, {}))}"
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    curve = summary.get("curve", [])
    if len({p["scale"] for p in curve}) > 1:
        steps = "; ".join(
            f"{enc} " + " / ".join(f"{n} at {s}x" for s, n in by_scale.items())
            for enc, by_scale in summary.get("curve_steps", {}).items()
        )
        lines += [
            "Unlabelled-data curve: gain over speaker-only (points, 95 % interval) by pre-training corpus size "
            f"(grown in {summary.get('scale_axis', 'speakers')}; "
            f"scale_budget {summary.get('scale_budget', 'fixed')}: contrastive steps {steps}):",
            "",
            "| encoder | corpus | "
            + " | ".join(
                f"{s}x ({hours[str(s)]:.2f} h)" if hours and str(s) in hours else f"{s}x"
                for s in sorted({p["scale"] for p in curve})
            )
            + " |",
        ]
        scales = sorted({p["scale"] for p in curve})
        lines.append("|---|---|" + "---|" * len(scales))
        for enc, corpus in sorted({(p["encoder"], p["corpus"]) for p in curve}):
            by = {p["scale"]: p for p in curve if p["encoder"] == enc and p["corpus"] == corpus}
            lines.append(
                f"| {enc} | {corpus} | "
                + " | ".join(
                    f"{100 * by[s]['mean_diff']:+.1f} [{100 * by[s]['ci95'][0]:+.1f}, {100 * by[s]['ci95'][1]:+.1f}]"
                    if s in by
                    else "-"
                    for s in scales
                )
                + " |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from ..utils.atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = summary["table"]
    columns = sorted({c for row in table.values() for c in row})
    labels = [r for r in table if "@" not in r]
    x = np.arange(len(columns))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(columns)) + 2, 4))
    for i, label in enumerate(labels):
        means = [100 * table[label].get(c, {}).get("ua_mean", np.nan) for c in columns]
        stds = [100 * table[label].get(c, {}).get("ua_std", 0.0) for c in columns]
        ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=stds, label=label, capsize=2)
    ax.set_xticks(x, columns, rotation=20, ha="right")
    ax.set_ylabel("UA (%)")
    ax.axhline(25, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    ax.set_title(f"few-label SER, mean over {len(summary['seeds'])} seeds x {summary['splits']} splits")
    _save(fig, path)


def _plot_curve(summary: dict, hours: Dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = summary["curve"]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for enc, corpus in sorted({(p["encoder"], p["corpus"]) for p in curve}):
        pts = sorted((p for p in curve if p["encoder"] == enc and p["corpus"] == corpus), key=lambda p: p["scale"])
        xs = [hours[str(p["scale"])] for p in pts]
        ys = [100 * p["mean_diff"] for p in pts]
        err = [
            [100 * (p["mean_diff"] - p["ci95"][0]) for p in pts],
            [100 * (p["ci95"][1] - p["mean_diff"]) for p in pts],
        ]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{enc}, {corpus}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    # ticks at the corpora's own sizes (the log axis' minor labels overlap on a 1x-16x range)
    ticks = sorted({hours[str(p["scale"])] for p in curve})
    ax.set_xticks(ticks, [f"{h:.2g} h" for h in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("hours of emotion-unlabelled pre-training audio")
    ax.set_ylabel("UA gain over speaker-only (points)")
    budget = {"fixed": "same steps at every size", "epochs": "steps grow with the corpus"}
    grown = {"speakers": "more speakers", "utterances": "more utterances per speaker"}
    ax.set_title(
        # two lines: one would run past the figure's left edge (the legend takes the right)
        f"unlabelled-data curve, 95 % intervals\n({grown.get(summary.get('scale_axis'), 'more speakers')}; "
        f"{budget.get(summary.get('scale_budget'), 'fixed')})",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, never over them
    _save(fig, path)


def _report(cfg: SerStudyConfig, out: Path) -> dict:
    from ..utils.atomic import atomic_write_json, atomic_write_text

    summary = summarise(out / "ser", cfg)
    corpora = out / "stages" / "corpora.json"
    hours = json.loads(corpora.read_text())["summary"].get("pretrain_hours", {}) if corpora.is_file() else {}
    summary["pretrain_hours"] = hours
    atomic_write_json(out / "report" / "ser_study.json", summary)
    atomic_write_text(out / "report" / "ser_study.md", report_markdown(summary, hours))
    _plot(summary, out / "report" / "ser_study.png")
    if len({p["scale"] for p in summary["curve"]}) > 1 and hours:
        _plot_curve(summary, hours, out / "report" / "ser_study_curve.png")
    return {"report": str(out / "report" / "ser_study.md")}


def build_stages(cfg: SerStudyConfig, out: Path) -> List[Stage]:
    """The study's stages, in three groups of independent ones (``stage_workers`` run side by side):
    what needs only the corpora, what needs those, and every pre-training."""
    runs = study_runs(cfg)
    stages = [
        Stage(
            "corpora",
            "synthesise the speaker, pre-training (each scale) and SER corpora with espeak-ng",
            lambda: _synthesise(cfg, out),
        )
    ]
    used = {r.intensity for r in cfg.ssl_rows}
    contrastive_rows = any(r.kind == "contrastive" for r in runs)
    # the untrained encoders: a row of their own, or where a contrastive row starts
    random_rows = any(r.kind == "random" for r in runs) or any(e.start == "random" for e in cfg.encoders)
    # (name, description, run) of each group: what needs only the corpora (StrengthNet first, the
    # longest), what needs those (StrengthNet's intensities, the speaker encoders' clusters), every pre-training
    from_corpora = [
        *(
            [
                (
                    "ssl_strengthnet",
                    f"train StrengthNet ({cfg.strengthnet}) on its own {cfg.strengthnet_corpus} corpus (SSL EMS rows)",
                    lambda: _ssl_strengthnet(cfg, out),
                )
            ]
            if "strengthnet" in used
            else []
        ),
        *(
            (
                f"speaker_encoder_s{seed}",
                f"train the speaker encoder ({cfg.speaker_encoder}, seed {seed})",
                lambda seed=seed: _train_speaker_encoder(cfg, seed, out),
            )
            for seed in cfg.seeds
        ),
        *(
            (
                f"random_init_s{seed}",
                f"the untrained encoder (seed {seed})",
                lambda seed=seed: _random_init(cfg, seed, out),
            )
            for seed in cfg.seeds
            if random_rows
        ),
    ]
    from_encoders = [
        *(
            (
                f"ssl_intensity_{source}",
                f"{source} intensities of the pre-training corpus (SSL EMS rows)",
                lambda source=source: _ssl_intensity(cfg, source, out),
            )
            for source in ("strengthnet", "energy")
            if source in used
        ),
        *(
            (
                f"clusters_{_scale_name(cfg, scale)}_s{seed}",
                f"intra-speaker clusters of the {scale}x pre-training corpus (seed {seed})",
                lambda seed=seed, scale=scale: _cluster(cfg, seed, scale, out),
            )
            for seed in cfg.seeds
            for scale in cfg.unlabeled_scales
            if contrastive_rows
        ),
    ]
    pretrainings = [
        (
            f"pretrain_{run.name}",
            f"{'contrastive' if run.kind == 'contrastive' else 'SSL'} pre-training ({run.row}, seed {run.seed})",
            lambda run=run: (_pretrain if run.kind == "contrastive" else _ssl_pretrain)(cfg, run, out),
        )
        for run in sorted((r for r in runs if r.kind in ("contrastive", "ssl")), key=lambda r: r.kind != "contrastive")
    ]
    for group, entries in (
        ("from_corpora", from_corpora),
        ("from_encoders", from_encoders),
        ("pretrain", pretrainings),
    ):
        stages += [Stage(name, description, run, group=group) for name, description, run in entries]
    for seed in cfg.seeds:  # one runner process per seed: s3prl is imported once for all its rows
        jobs = [(_upstream(cfg, run, out), ser_tasks(cfg, out, run.fractions)) for run in runs if run.seed == seed]
        stages.append(
            Stage(
                f"ser_s{seed}",
                f"{sum(len(t) for _, t in jobs)} SER runs of {len(jobs)} encoders (seed {seed})",
                lambda jobs=jobs, seed=seed: run_upstreams(
                    jobs, out / "ser", cfg.device, name=f"batch_s{seed}", workers=cfg.downstream_workers
                ),
            )
        )
    stages.append(
        Stage(
            "report",
            "UA/WA over seeds x splits, paired differences with bootstrap intervals",
            lambda: _report(cfg, out),
        )
    )
    return stages


def run_ser_study(
    out: Path,
    quick: bool = False,
    redo: Sequence[str] = (),
    overrides: Optional[List[str]] = None,
    config: Optional[str] = None,
    stage: Optional[str] = None,
) -> str:
    """Run (or finish) the study into ``out``; return the report and stage times as Markdown.
    ``stage``: only that stage, for the study running in ``out`` (its child processes)."""
    from ..utils.atomic import ensure_writable_dir

    out = ensure_writable_dir(out).resolve()
    cfg = load_study_config(quick, overrides, config)
    return run_staged_job(
        "ser-study",
        out,
        build_stages(cfg, out),
        "report/ser_study.md",
        redo=redo,
        stage=stage,
        workers=cfg.stage_workers,
        quick=quick,
        overrides=overrides or [],
        extra=["--config", config] if config else [],
    )
