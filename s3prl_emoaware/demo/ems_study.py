"""``s3prl-emoaware ems-study``: does intensity-guided masking help, with the power to tell.

Each backbone (Mockingjay, NPC) is pre-trained on the same emotion-unlabelled corpus, with
the same steps and seeds, under several masking rows:

- ``random``: Mockingjay's rule (for NPC: the same random spans zeroed in the input, so a gain
  of the EMS rows over it cannot come from the extra masking itself);
- ``ems_topk``: the authors' rule with StrengthNet intensities;
- ``ems``: the budget-matched stochastic rule (the package default) with StrengthNet intensities;
- ``ems_oracle``: the same rule with an *oracle* intensity (1 inside the generator's emotional
  segment, 0 elsewhere; study only), which separates "how good is the intensity" from "does
  intensity-guided masking help".

StrengthNet is trained on another corpus (an ESD-layout one, other speakers: the paper used
ESD), never on the IEMOCAP-layout folds it is judged on, once per ``strengthnet_seeds``: the
pre-training seeds take the StrengthNets in turn, so the rows' intervals cover the StrengthNet
too (one shared StrengthNet moved the Mockingjay EMS gain from -1.0 to +4.7 between two
StrengthNet seeds, outside either interval; docs/results.md). Every pre-trained upstream goes
through the stock runner: IEMOCAP emotion over all folds, phoneme recognition and intent
classification. The report gives, per row, mean and spread, and the paired difference to
the backbone's random row (same pre-training seed, same fold) with a 95 % two-stage bootstrap
interval (seeds, then folds within a seed: :func:`..utils.stats.clustered_bootstrap`), the mean
difference per seed, and wins/ties/losses; it also says what each row's masks spend and where
(masked fraction, share in the top intensity quartile and inside the emotional segments,
coverage over one and over ten epochs), simulated with the row's own masker.

Stages (resumable, like the demo): corpora, strengthnet_s<k> (one per StrengthNet), intensity, pretrain_<row>_s<seed>,
downstream_<row>_s<seed>, masks, report.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..leaderboard import HIGHER_IS_BETTER
from ..utils.stats import paired_by_seed
from .downstream import UpstreamSpec, run_upstream
from .pipeline import DownstreamSizes, superb_tasks
from .stages import Stage, run_staged_job
from .steps import (
    corpus_plan,
    load_job_config,
    pretraining_intensities,
    recipe_needs_intensity,
    synthesize_missing,
    train_shipped_strengthnet,
)

logger = logging.getLogger(__name__)

__all__ = [
    "EmsStudyConfig",
    "RowSpec",
    "BackboneSpec",
    "build_stages",
    "run_ems_study",
    "summarise",
    "oracle_curve",
    "strengthnet_seed_of",
]

INTENSITY_SOURCES = ("none", "strengthnet", "oracle", "energy")


@dataclass
class BackboneSpec:
    """A pre-training recipe (``upstream_configs/<config>.yaml``) and the runner name that loads it."""

    name: str
    config: str
    upstream: str
    overrides: List[str] = field(default_factory=list)


@dataclass
class RowSpec:
    """One row: a backbone, a masking strategy and where its intensity comes from.

    Attributes:
        label: row name (folders: ``<label>_s<seed>``).
        backbone: a :class:`BackboneSpec` name.
        masking: ``masking.strategy`` of the recipe.
        intensity: ``none``, ``strengthnet``, ``oracle`` (the generator's segments) or ``energy``.
        overrides: further recipe overrides (``objective.variant=input_mask`` ...).
        baseline: the row this one is paired with (default: the backbone's first ``random`` row).
        also_against: further rows this one is paired with, in the report's second table (an
            EMS row against the same masker unguided, say: what the guidance alone adds).
    """

    label: str
    backbone: str
    masking: str
    intensity: str = "none"
    overrides: List[str] = field(default_factory=list)
    baseline: Optional[str] = None
    also_against: List[str] = field(default_factory=list)

    def __post_init__(self):
        if self.intensity not in INTENSITY_SOURCES:
            raise ValueError(
                f"row {self.label!r}: intensity must be one of {INTENSITY_SOURCES}, got {self.intensity!r}"
            )


@dataclass
class EmsStudyConfig:
    """Fields of ``s3prl_emoaware/demo/configs/ems_study{,_quick}.yaml``.

    Attributes:
        seed: seed of the generated corpora (the labelled IEMOCAP layout uses it, the
            pre-training corpus seed + 1, StrengthNet's ESD-layout corpus seed + 2). Knobs are
            chosen with another seed (``-o seed=100``), never on the reported folds.
        corpus_size: ``demo`` or ``tiny``.
        emotion_utts_per_speaker: utterances per speaker of the labelled IEMOCAP layout (null:
            the ``corpus_size`` preset's, 24 for ``demo``: 48 test utterances per fold). The
            pre-training corpus keeps the preset's size; only what emotion is judged on grows.
        seeds: pre-training seeds (``training.seed``); each crosses every fold.
        folds: IEMOCAP leave-one-session-out folds.
        tasks: SUPERB downstreams (emotion, phoneme_recognition, fluent_commands).
        sizes: runner overrides per task.
        downstream_workers: runner processes at once for one upstream's downstream runs, each
            with ``cores // workers`` threads (``bench/bench_runner_workers.py``).
        stage_workers: pre-trainings at once, each a fresh process with ``cores // workers``
            threads (1: one at a time in this process). A pre-training's result depends on its
            thread count (float sums in another order), not on what runs beside it.
        lr_search: task -> learning rates tried for every pre-trained upstream, the dev-best kept
            (as the demo's ``lr_search``; the test split never chooses).
        strengthnet / strengthnet_overrides: StrengthNet recipe, trained on ``strengthnet_corpus``.
        strengthnet_seeds: one StrengthNet per entry (its ``training.seed``), in
            ``strengthnet/s<k>``; the pre-training seed at position i of ``seeds`` reads the
            intensities of StrengthNet ``strengthnet_seeds[i % len]``. ``[k]``: one shared by all;
            ``null``: one shared, of the recipe's own seed, in ``strengthnet/`` (the layout of
            ``ser-study``'s SSL rows and of ems-study runs before per-seed StrengthNets).
        backbones, rows: what is pre-trained.
        mask_epochs: epochs simulated for the long-run coverage of each row's masks.
        bootstrap: resamples of the paired bootstrap.
        drop_hidden_states: once an upstream's downstream stage has finished, delete its entries
            from the hidden-state cache (``downstream/hidden_cache``), so the disk holds the
            states of the upstreams still running, not of every upstream so far (about 150 MB
            per upstream on the demo-size corpora; 83 upstreams filled the cache's 20 GB limit).
            Off by default: a later study on the same checkpoints (other tasks or steps) reads
            them back instead of recomputing.
    """

    seed: int = 0
    corpus_size: str = "demo"
    emotion_utts_per_speaker: Optional[int] = None
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    folds: int = 5
    tasks: List[str] = field(default_factory=lambda: ["emotion", "phoneme_recognition", "fluent_commands"])
    sizes: DownstreamSizes = field(default_factory=DownstreamSizes)
    lr_search: Dict[str, List[float]] = field(default_factory=dict)
    device: str = "cpu"
    downstream_workers: int = 2
    stage_workers: int = 2
    strengthnet: str = "strengthnet_small"
    strengthnet_overrides: List[str] = field(default_factory=list)
    strengthnet_corpus: str = "esd"
    strengthnet_seeds: Optional[List[int]] = field(default_factory=lambda: [0, 1, 2])
    backbones: List[BackboneSpec] = field(default_factory=list)
    rows: List[RowSpec] = field(default_factory=list)
    mask_epochs: int = 10
    bootstrap: int = 10000
    drop_hidden_states: bool = False

    def __post_init__(self):
        names = {b.name for b in self.backbones}
        labels = [r.label for r in self.rows]
        if len(set(labels)) != len(labels):
            raise ValueError("rows: labels must be unique")
        for key in ("downstream_workers", "stage_workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for row in self.rows:
            if row.backbone not in names:
                raise ValueError(f"row {row.label!r}: unknown backbone {row.backbone!r}; known: {sorted(names)}")
            for other in [row.baseline, *row.also_against]:
                if other is not None and (other not in labels or other == row.label):
                    raise ValueError(f"row {row.label!r}: unknown baseline row {other!r}")
        if not self.seeds:
            raise ValueError("seeds: give at least one pre-training seed")
        sn = self.strengthnet_seeds
        if sn is not None and (not sn or len(set(sn)) != len(sn)):
            raise ValueError("strengthnet_seeds: give at least one StrengthNet seed, each once (or null)")
        from ..corpora.layouts.iemocap import MAX_UTTS_PER_SPEAKER

        if self.emotion_utts_per_speaker is not None and not 1 <= self.emotion_utts_per_speaker <= MAX_UTTS_PER_SPEAKER:
            raise ValueError(
                f"emotion_utts_per_speaker must be in 1..{MAX_UTTS_PER_SPEAKER} (or null), "
                f"got {self.emotion_utts_per_speaker}"
            )
        if self.mask_epochs < 1 or self.bootstrap < 100:
            raise ValueError("mask_epochs must be >= 1 and bootstrap >= 100")


def load_study_config(quick: bool, overrides: Optional[List[str]] = None) -> EmsStudyConfig:
    return load_job_config(
        EmsStudyConfig, "ems_study_quick.yaml" if quick else "ems_study.yaml", overrides, "ems-study config"
    )


def _corpora(out: Path) -> Dict[str, Path]:
    root = out / "corpora"
    return {
        "iemocap": root / "iemocap",
        "librispeech": root / "librispeech",
        "fsc": root / "fsc",
        "pretrain": root / "pretrain_iemocap",
        "strengthnet": root / "strengthnet_corpus",
    }


def _synthesise(cfg: EmsStudyConfig, out: Path) -> dict:
    needed = {"librispeech": "phoneme_recognition", "fsc": "fluent_commands"}
    paths = {name: path for name, path in _corpora(out).items() if name not in needed or needed[name] in cfg.tasks}
    special = {"pretrain": ("iemocap", cfg.seed + 1), "strengthnet": (cfg.strengthnet_corpus, cfg.seed + 2)}
    per_speaker = cfg.emotion_utts_per_speaker
    options = {} if per_speaker is None else {"iemocap": {"utts_per_speaker": per_speaker}}
    return synthesize_missing(corpus_plan(paths, cfg.seed, special), cfg.corpus_size, options)


def _strengthnets(cfg: EmsStudyConfig) -> List[Optional[int]]:
    """The StrengthNets of the study by training seed (None: one, of the recipe's own seed)."""
    return list(cfg.strengthnet_seeds) if cfg.strengthnet_seeds is not None else [None]


def strengthnet_seed_of(cfg: EmsStudyConfig, seed: int) -> Optional[int]:
    """The StrengthNet (its training seed; None: the one shared) whose intensities pre-training seed ``seed`` reads."""
    instances = _strengthnets(cfg)
    return instances[cfg.seeds.index(seed) % len(instances)]


def _strengthnet_name(k: Optional[int]) -> str:
    return "strengthnet" if k is None else f"strengthnet_s{k}"


def _strengthnet_dir(out: Path, k: Optional[int]) -> Path:
    return out / "strengthnet" if k is None else out / "strengthnet" / f"s{k}"


def _train_strengthnet(cfg: EmsStudyConfig, out: Path, k: Optional[int]) -> dict:
    # judged on the pre-training corpus too (its sidecar says where the emotion is), never trained on it
    return train_shipped_strengthnet(
        cfg.strengthnet,
        [*cfg.strengthnet_overrides, *([] if k is None else [f"training.seed={k}"])],
        _corpora(out)["strengthnet"],
        _strengthnet_dir(out, k),
        eval_corpora=[_corpora(out)["pretrain"]],
    )


def oracle_curve(
    num_frames: int, segment: Optional[Tuple[float, float]], emotional: bool, frame_centres: np.ndarray
) -> np.ndarray:
    """1 on the frames inside the emotional segment, 0 elsewhere; (T,) float32.

    A whole-utterance emotion without a recorded segment is 1 everywhere, a neutral one 0.
    """
    if segment is not None:
        t = frame_centres[:num_frames]
        return ((t >= segment[0]) & (t < segment[1])).astype(np.float32)
    return np.full(num_frames, 1.0 if emotional else 0.0, dtype=np.float32)


def _oracle_cache(out: Path) -> dict:
    from ..corpora.reader import read_corpus
    from ..intensity.alignment import FBANK_GRID
    from ..intensity.cache import IntensityCacheWriter
    from ..utils.audio import AudioError, read_audio

    writer = IntensityCacheWriter(out / "intensity" / "oracle", "oracle", FBANK_GRID, "fbank-25-10")
    inside = total = 0
    for u in read_corpus(_corpora(out)["pretrain"]):
        try:
            wav = read_audio(u.path, expected_rate=FBANK_GRID.sample_rate)
        except AudioError as err:
            writer.fail(u.utt_id, str(err))
            continue
        n = FBANK_GRID.num_frames(len(wav))
        curve = oracle_curve(n, u.emotional_segment, (u.emotion or "neu") != "neu", FBANK_GRID.centres(n))
        writer.add(u.utt_id, curve, str(u.path), wav)
        inside, total = inside + int(curve.sum()), total + n
    writer.flush()
    return {"utterances": len(writer.items), "emotional_frame_share": inside / max(1, total)}


def _intensities(cfg: EmsStudyConfig, out: Path) -> dict:
    used = {r.intensity for r in cfg.rows}
    corpus = _corpora(out)["pretrain"]
    summary = pretraining_intensities(corpus, out / "intensity", used - {"strengthnet"})
    if "strengthnet" in used:
        for k in _strengthnets(cfg):
            checkpoint = _strengthnet_dir(out, k) / "strengthnet.ckpt"
            summary.update(
                pretraining_intensities(corpus, out / "intensity", {"strengthnet"}, checkpoint, _strengthnet_name(k))
            )
    # the oracle also serves the mask report (share of masks inside the emotional segments)
    summary["oracle"] = _oracle_cache(out)
    return summary


def _backbone(cfg: EmsStudyConfig, name: str) -> BackboneSpec:
    return next(b for b in cfg.backbones if b.name == name)


def _recipe(cfg: EmsStudyConfig, row: RowSpec, seed: int):
    from ..config import load_config, shipped_config
    from ..pretraining.trainer import PretrainRecipe

    bb = _backbone(cfg, row.backbone)
    return load_config(
        PretrainRecipe,
        shipped_config("upstream_configs", bb.config),
        [*bb.overrides, f"masking.strategy={row.masking}", *row.overrides, f"training.seed={seed}"],
    )


def _intensity_dir(cfg: EmsStudyConfig, row: RowSpec, seed: int, out: Path) -> Optional[str]:
    if row.intensity == "strengthnet":
        return str(out / "intensity" / _strengthnet_name(strengthnet_seed_of(cfg, seed)))
    return None if row.intensity == "none" else str(out / "intensity" / row.intensity)


def _run_name(row: RowSpec, seed: int) -> str:
    return f"{row.label}_s{seed}"


def _pretrain(cfg: EmsStudyConfig, row: RowSpec, seed: int, out: Path, corpus: Optional[Path] = None) -> dict:
    """Pre-train ``row`` with ``seed`` on ``corpus`` (default: the study's pre-training corpus)
    into ``out/pretrain/<row>_s<seed>``, with the intensities of ``out/intensity/<source>`` (StrengthNet's:
    ``strengthnet_s<k>``, :func:`strengthnet_seed_of`)."""
    from ..pretraining.run import pretrain
    from ..utils.errors import UserFacingError

    recipe = _recipe(cfg, row, seed)
    cache = _intensity_dir(cfg, row, seed, out)
    if recipe_needs_intensity(recipe) and cache is None:
        raise UserFacingError(f"ems-study row {row.label!r}: its recipe needs intensities; set its intensity source")
    _, history = pretrain(
        recipe,
        corpus or _corpora(out)["pretrain"],
        out / "pretrain" / _run_name(row, seed),
        cache if recipe_needs_intensity(recipe) else None,
        device=cfg.device,
    )
    losses = [loss for _, loss in history]
    tail = losses[-max(1, len(losses) // 10) :]
    head = losses[-2 * len(tail) : -len(tail)] or tail
    # a loss that has levelled off changes little between the last two tenths of the run
    return {
        "steps": len(history),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "last_tenth_mean": statistics.fmean(tail),
        "previous_tenth_mean": statistics.fmean(head),
    }


def _frame_energies(recipe, utterances) -> Dict[str, np.ndarray]:
    """Mean log-mel energy per frame on ``recipe``'s front-end, for the masker's VAD."""
    import torch

    from ..features import FbankFrontend
    from ..utils.audio import AudioError, read_audio

    frontend, energies = FbankFrontend(recipe.frontend), {}
    for u in utterances:
        try:
            wav = read_audio(u.path, expected_rate=recipe.frontend.sample_rate)
        except AudioError as err:
            logger.warning("mask report: skipped %s", err)
            continue
        with torch.no_grad():
            feats = frontend.extract_one(torch.from_numpy(wav))
        energies[u.utt_id] = feats[:, : recipe.frontend.num_mel_bins].mean(-1).numpy()
    return energies


def _simulate_masks(cfg: EmsStudyConfig, recipe, energies: Dict[str, np.ndarray], own, ref, oracle) -> dict:
    """One row's masks over ``mask_epochs`` epochs, drawn with intensity ``own`` (None: none); the
    top-quartile share is read on ``ref``'s curves."""
    from ..masking.spans import batch_masks, choose_starts, mask_statistics, spans_to_mask, speech_frames

    covered, masks, ref_curves = {}, [], []
    cfg_m = recipe.masking
    batched = cfg_m.strategy == "ems" and cfg_m.budget_scope == "batch"
    # first epoch: masked and all frames of emotional speech, the emotional segment's pauses, other speech, other
    # silence (the segment's share, the share inside it and the coverage are sums of these)
    kinds_masked, kinds_all = np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64)
    ids = [utt for utt in energies if utt in oracle]
    lengths = {utt: min(len(energies[utt]), recipe.training.max_frames) for utt in ids}
    speeches = {utt: speech_frames(energies[utt][: lengths[utt]], cfg_m.vad_threshold) for utt in ids}
    for epoch in range(cfg.mask_epochs):
        drawn = {}
        if batched:  # the budget is shared by a batch: draw shuffled batches of the pre-training size
            order = np.random.default_rng([cfg.seeds[0], epoch]).permutation(len(ids))
            size = max(1, recipe.training.batch_size)
            for b in range(0, len(order), size):
                group = [ids[j] for j in order[b : b + size]]
                ns = [lengths[u] for u in group]
                rows, _ = batch_masks(
                    ns,
                    max(ns),
                    cfg_m,
                    np.random.default_rng([cfg.seeds[0], epoch, b]),
                    [own.get(u)[: lengths[u]] for u in group],
                    [speeches[u] for u in group],
                )
                drawn.update({u: rows[k, : lengths[u]].numpy() for k, u in enumerate(group)})
        for i, utt in enumerate(ids):
            n, speech = lengths[utt], speeches[utt]
            if batched:
                mask = drawn[utt]
            else:
                rng = np.random.default_rng([cfg.seeds[0], epoch, i])
                curve = own.get(utt)[:n] if own is not None else None
                mask = spans_to_mask(choose_starts(cfg_m, n, rng, curve, speech), n, cfg_m.span)
            covered[utt] = mask if epoch == 0 else covered[utt] | mask
            if epoch == 0:
                masks.append(mask)
                ref_curves.append(ref.get(utt)[:n] if ref is not None else np.zeros(n))
                seg = oracle.get(utt)[:n] > 0.5
                for k, kind in enumerate((seg & speech, seg & ~speech, ~seg & speech, ~seg & ~speech)):
                    kinds_masked[k] += int((mask & kind).sum())
                    kinds_all[k] += int(kind.sum())
        if epoch == 0:
            total = int(kinds_all.sum())
            first_coverage = sum(int(c.sum()) for c in covered.values()) / max(1, total)
    return {
        **mask_statistics(masks, ref_curves),
        "inside_emotional_segments": int(kinds_masked[:2].sum()) / max(1, int(kinds_masked.sum())),
        "emotional_frame_share": int(kinds_all[:2].sum()) / max(1, total),
        # the share of each kind of frame that is masked (random masking: about the masked fraction on each):
        # guided masks should raise the first two without raising "other speech"; moving masks out of the
        # pauses raises the speech's share instead (docs/results.md, "Where the masks go, by kind of frame")
        **{
            f"rate_{kind}": int(m) / max(1, int(a))
            for kind, m, a in zip(
                ("emotional_speech", "emotional_pauses", "other_speech", "other_silence"), kinds_masked, kinds_all
            )
        },
        "coverage_1_epoch": first_coverage,
        f"coverage_{cfg.mask_epochs}_epochs": sum(int(c.sum()) for c in covered.values()) / max(1, total),
    }


def mask_report(cfg: EmsStudyConfig, out: Path) -> Dict[str, dict]:
    """What each row's masker does on the pre-training corpus, one independent draw per utterance
    and epoch (as pre-training draws afresh at every step): masked fraction, top-quartile share (StrengthNet's curve
    where there is one, else the row's), share inside the emotional segments (the oracle) against
    the share of such frames, and coverage after one and after ``mask_epochs`` epochs. A row is
    keyed by its label with the first pre-training seed's StrengthNet; a row that reads StrengthNet
    also by ``"<label> (strengthnet_s<k>)"`` with each other StrengthNet of the study."""
    from ..corpora.reader import read_corpus
    from ..intensity.cache import IntensityCache

    utterances = read_corpus(_corpora(out)["pretrain"])
    oracle = IntensityCache(out / "intensity" / "oracle")

    first = _strengthnet_name(strengthnet_seed_of(cfg, cfg.seeds[0]))
    others = [_strengthnet_name(k) for k in _strengthnets(cfg) if _strengthnet_name(k) != first]
    caches = {  # each read once: every row below draws from them
        folder: IntensityCache(out / "intensity" / folder)
        for folder in (first, *others, "energy")
        if (out / "intensity" / folder / "index.json").is_file()
    }
    energies: Dict[str, Dict[str, np.ndarray]] = {}
    report = {}
    for row in cfg.rows:
        recipe = _recipe(cfg, row, cfg.seeds[0])
        if row.backbone not in energies:  # frame energy on this backbone's front-end, for the VAD
            energies[row.backbone] = _frame_energies(recipe, utterances)
        sources = {"none": None, "oracle": oracle, "strengthnet": caches.get(first), "energy": caches.get("energy")}
        own = sources[row.intensity]
        ref = caches.get(first, own)
        report[row.label] = _simulate_masks(cfg, recipe, energies[row.backbone], own, ref, oracle)
        for folder in others if row.intensity == "strengthnet" else []:
            other = caches.get(folder)
            if other is not None:
                report[f"{row.label} ({folder})"] = _simulate_masks(
                    cfg, recipe, energies[row.backbone], other, other, oracle
                )
    from ..utils.atomic import atomic_write_json

    atomic_write_json(out / "report" / "masks.json", report)
    return report


def _scores(out: Path, run: str) -> Dict[Tuple[str, Optional[str]], float]:
    """{(task/metric, fold): value} of one pre-trained upstream's runner experiments."""
    from ..downstreams.scoring import NOT_SELECTED_FILE
    from ..leaderboard import score_experiment

    scores = {}
    root = out / "downstream" / run
    for args in sorted(root.rglob("args_*.yaml")) if root.is_dir() else []:
        if (args.parent / NOT_SELECTED_FILE).is_file():  # another learning rate won on dev (lr_search)
            continue
        for r in score_experiment(args.parent):
            scores[(f"{r.task}/{r.metric}", r.fold)] = r.value
    return scores


def baseline_of(cfg: EmsStudyConfig, row: RowSpec) -> Optional[str]:
    """The row ``row`` is paired with: its ``baseline``, else its backbone's first random-masking row
    (a second random row, e.g. a control with other overrides, is paired with that one too); None
    for that first random row itself."""
    base = row.baseline or next(
        (r.label for r in cfg.rows if r.backbone == row.backbone and r.masking == "random"), None
    )
    return None if base == row.label else base


def _pair(ours: Dict[tuple, float], theirs: Dict[tuple, float], metric: str, resamples: int) -> Optional[dict]:
    higher = HIGHER_IS_BETTER.get(metric.split("/")[-1], True)
    return paired_by_seed(ours, theirs, resamples, higher_is_better=higher)


def summarise(cfg: EmsStudyConfig, out: Path) -> dict:
    """Per row and metric: mean, spread and n over seeds x folds; paired difference to its
    baseline row (``paired``) and to each of its ``also_against`` rows (``further``, by that row)
    with a two-stage bootstrap interval (seeds, then folds), its mean per seed, and
    wins/ties/losses (ties: equal to 1e-9)."""
    scores = {(row.label, s): _scores(out, _run_name(row, s)) for row in cfg.rows for s in cfg.seeds}
    metrics = sorted({m for sc in scores.values() for (m, _) in sc})

    def values(label: str, metric: str) -> Dict[tuple, float]:
        return {(s, fold): v for s in cfg.seeds for (m, fold), v in scores[(label, s)].items() if m == metric}

    table, paired, further = {}, {}, {}
    for row in cfg.rows:
        base = baseline_of(cfg, row)
        for metric in metrics:
            ours = values(row.label, metric)
            if not ours:
                continue
            vals = list(ours.values())
            table.setdefault(row.label, {})[metric] = {
                "mean": statistics.fmean(vals),
                "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
                "n": len(vals),
            }
            if base is not None and (diff := _pair(ours, values(base, metric), metric, cfg.bootstrap)):
                paired.setdefault(row.label, {})[metric] = {"baseline": base, **diff}
            for other in row.also_against:
                if diff := _pair(ours, values(other, metric), metric, cfg.bootstrap):
                    further.setdefault(row.label, {}).setdefault(other, {})[metric] = diff
    return {
        "table": table,
        "paired": paired,
        "further": further,
        "seeds": cfg.seeds,
        "folds": cfg.folds,
        "pretraining": _loss_levels(cfg, out),
    }


def _loss_levels(cfg: EmsStudyConfig, out: Path) -> Dict[str, dict]:
    """Per row: mean last-step loss and the relative change between the last two tenths of the
    run (a levelled-off loss changes by a few percent at most)."""
    levels = {}
    for row in cfg.rows:
        runs = [
            json.loads(p.read_text())["summary"]
            for s in cfg.seeds
            if (p := out / "stages" / f"pretrain_{_run_name(row, s)}.json").is_file()
        ]
        if runs:
            levels[row.label] = {
                "last_loss": statistics.fmean(r["last_loss"] for r in runs),
                "last_tenth_change": statistics.fmean(
                    r["last_tenth_mean"] / r["previous_tenth_mean"] - 1 for r in runs
                ),
            }
    return levels


def _pct(metric: str) -> float:
    return 100.0  # accuracies and PER are fractions; the report shows percent


# StrengthNet's calibration targets (issue "EMS that carries emotion"; docs/results.md, StrengthNet)
STRENGTHNET_TARGETS = {"auc_emotional_vs_neutral": 0.95, "level_difference": 0.3, "localisation_spliced": 0.9}


def strengthnet_lines(metrics: dict, name: str = "StrengthNet", shared: bool = True) -> List[str]:
    """The report's lines on one StrengthNet: its held-out figures against :data:`STRENGTHNET_TARGETS`.
    ``shared``: every pre-training seed reads this one StrengthNet, so its quality is outside the rows'
    intervals (three shared StrengthNets gave Mockingjay EMS +6.1, -1.0 and +4.7)."""
    cells, below = [], []
    for key, target in STRENGTHNET_TARGETS.items():
        value = metrics.get(key)
        if value is None:
            continue
        cells.append(f"{key} {value:.2f} (target {target})")
        if value < target:
            below.append(key)
    lines = [f"{name} (held-out speakers of its corpus): " + ", ".join(cells) + "."]
    if below and shared:
        lines.append(
            f"**Below target: {', '.join(below)}.** Every seed here shares this StrengthNet, so the intervals of "
            "the rows that read it do not cover its quality (docs/results.md: the Mockingjay EMS gain moved with "
            "the StrengthNet instance across three of them)."
        )
    elif below:
        lines.append(f"**Below target: {', '.join(below)}.**")
    return [*lines, ""]


def _diff_cells(by_metric: Dict[str, dict]) -> List[str]:
    """``task +d.dd [lo, hi] W/T/L (per seed: ...)`` for each metric of one pairing, in percent."""
    cells = []
    for m, p in sorted(by_metric.items()):
        k = _pct(m)
        seeds = " ".join(f"{k * v:+.1f}" for v in p.get("per_seed", {}).values())
        cells.append(
            f"{m.split('/')[0]} {k * p['mean_diff']:+.2f} [{k * p['ci95'][0]:+.2f}, "
            f"{k * p['ci95'][1]:+.2f}] {p['wins_ties_losses']} (per seed: {seeds})"
        )
    return cells


def report_markdown(summary: dict, masks: Dict[str, dict], strengthnets: Optional[Dict[str, dict]] = None) -> str:
    """The study's Markdown report; ``strengthnets``: ``{"s<k>": held-out metrics}`` of each StrengthNet."""
    table, paired = summary["table"], summary["paired"]
    metrics = sorted({m for row in table.values() for m in row})
    lines = [
        "| row | " + " | ".join(metrics) + " | Δ vs random (95 % CI), W/T/L |",
        "|---|" + "---|" * (len(metrics) + 1),
    ]
    for label, row in table.items():
        cells = []
        for m in metrics:
            s = row.get(m)
            cells.append("-" if s is None else f"{_pct(m) * s['mean']:.2f} ± {_pct(m) * s['std']:.2f} (n={s['n']})")
        diffs = _diff_cells(paired.get(label, {}))
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + ("<br>".join(diffs) or "(baseline)") + " |")
    lines += [
        "",
        f"Mean ± spread over pre-training seeds {summary['seeds']} x IEMOCAP folds (emotion) or over seeds "
        "(PR, IC). Δ: paired difference to the backbone's random-masking row (same seed, same fold), "
        "95 % two-stage percentile-bootstrap interval (seeds resampled, then the folds of each drawn seed), "
        "and its mean per seed; W/T/L: wins/ties/losses of those pairs (a win: higher accuracy, lower PER).",
        "",
    ]
    further = summary.get("further", {})
    if further:
        lines += ["Further pairs (same seed, same fold; as above):", "", "| row | against | Δ (95 % CI), W/T/L |"]
        lines.append("|---|---|---|")
        for label, others in further.items():
            lines += [f"| {label} | {other} | " + "<br>".join(_diff_cells(d)) + " |" for other, d in others.items()]
        lines.append("")
    for name, metrics in (strengthnets or {}).items():
        lines += strengthnet_lines(metrics, f"StrengthNet {name}".strip(), shared=len(strengthnets) == 1)
    levels = summary.get("pretraining", {})
    if levels:
        lines += [
            "Pre-training loss (mean over seeds): last step, and the change from the previous tenth of the run "
            "to the last (levelled off: a few percent):",
            "",
        ]
        lines += [
            f"- {label}: {v['last_loss']:.4f} ({100 * v['last_tenth_change']:+.1f} %)" for label, v in levels.items()
        ]
        lines.append("")
    if masks:
        keys = list(next(iter(masks.values())))
        lines += [
            "Where each row's masks go (pre-training corpus, simulated with the row's masker):",
            "",
            "| row | " + " | ".join(keys) + " |",
            "|---|" + "---|" * len(keys),
        ]
        lines += [
            f"| {label} | " + " | ".join(f"{v:.3f}" for v in stats.values()) + " |" for label, stats in masks.items()
        ]
    return "\n".join(lines) + "\n"


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = summary["paired"]
    metrics = sorted({m for row in paired.values() for m in row})
    if not metrics:
        return
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        labels = [label for label in paired if m in paired[label]]
        k = _pct(m)
        means = [k * paired[label][m]["mean_diff"] for label in labels]
        lo = [k * (paired[label][m]["mean_diff"] - paired[label][m]["ci95"][0]) for label in labels]
        hi = [k * (paired[label][m]["ci95"][1] - paired[label][m]["mean_diff"]) for label in labels]
        # each seed's own difference beside the interval: the seed-to-seed spread is the study's noise
        for i, label in enumerate(labels):
            seeds = [k * v for v in paired[label][m].get("per_seed", {}).values()]
            ax.scatter(seeds, [i + 0.15] * len(seeds), s=9, color="grey", alpha=0.7, zorder=1)
        ax.errorbar(means, range(len(labels)), xerr=[lo, hi], fmt="o", capsize=3, zorder=2)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{m}\nΔ vs random (95 % CI; grey: per seed)", fontsize=8)
    fig.tight_layout()
    from ..utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _report(cfg: EmsStudyConfig, out: Path) -> dict:
    from ..utils.atomic import atomic_write_json, atomic_write_text

    summary = summarise(cfg, out)
    masks = json.loads((out / "report" / "masks.json").read_text()) if (out / "report" / "masks.json").is_file() else {}
    atomic_write_json(out / "report" / "ems_study.json", {**summary, "masks": masks})
    strengthnets = {
        "" if k is None else f"s{k}": json.loads(path.read_text())
        for k in _strengthnets(cfg)
        if (path := _strengthnet_dir(out, k) / "metrics.json").is_file()
    }
    atomic_write_text(out / "report" / "ems_study.md", report_markdown(summary, masks, strengthnets))
    _plot(summary, out / "report" / "ems_study.png")
    return {"report": str(out / "report" / "ems_study.md")}


def _downstream(cfg: EmsStudyConfig, up: UpstreamSpec, tasks, out: Path) -> dict:
    summary = run_upstream(up, tasks, out / "downstream", cfg.device, workers=cfg.downstream_workers)
    if cfg.drop_hidden_states:
        from ..s3prl_adapters.hidden_cache import drop_checkpoint_entries

        summary["hidden_states_dropped"] = drop_checkpoint_entries(out / "downstream" / "hidden_cache", Path(up.ckpt))
    return summary


def build_stages(cfg: EmsStudyConfig, out: Path) -> List[Stage]:
    stages = [
        Stage(
            "corpora",
            "synthesise the labelled, pre-training and StrengthNet corpora (and PR/IC ones)",
            lambda: _synthesise(cfg, out),
        )
    ]

    def pretrain_stage(row: RowSpec, seed: int) -> Stage:
        return Stage(
            f"pretrain_{_run_name(row, seed)}",
            f"pre-train {row.backbone} ({row.masking} masking, {row.intensity} intensity, seed {seed})",
            lambda: _pretrain(cfg, row, seed, out),
            group="pretrain",
        )

    runs = [(row, seed) for row in cfg.rows for seed in cfg.seeds]
    unguided = [run for run in runs if not recipe_needs_intensity(_recipe(cfg, *run))]
    # The StrengthNets and the pre-trainings that read no intensity need none of each other's outputs: one
    # group, StrengthNets first (the longest), a process and a core each. Before, the StrengthNets ran one
    # after another on both cores (about 375 s each, 18.8 of the default study's 57.5 minutes; the block now
    # takes 18.7 with the six unguided pre-trainings in it, and the whole about 54).
    if any(r.intensity == "strengthnet" for r in cfg.rows):
        stages += [
            Stage(
                _strengthnet_name(k),
                f"train StrengthNet ({cfg.strengthnet}{'' if k is None else f', seed {k}'}) on the "
                f"{cfg.strengthnet_corpus} corpus (never on the reported folds)",
                lambda k=k: _train_strengthnet(cfg, out, k),
                group="pretrain",
            )
            for k in _strengthnets(cfg)
        ]
    stages += [pretrain_stage(*run) for run in unguided]
    stages.append(
        Stage(
            "intensity",
            "intensities of the pre-training corpus (StrengthNet, oracle, energy as used)",
            lambda: _intensities(cfg, out),
        )
    )
    stages += [pretrain_stage(*run) for run in runs if run not in unguided]
    stages.append(Stage("masks", "where each row's masks go on the pre-training corpus", lambda: mask_report(cfg, out)))
    tasks = superb_tasks(cfg.tasks, cfg.sizes, cfg.folds, _corpora(out), cfg.lr_search)
    for row in cfg.rows:
        for seed in cfg.seeds:
            run = _run_name(row, seed)
            up = UpstreamSpec(run, _backbone(cfg, row.backbone).upstream, str(out / "pretrain" / run / "last.ckpt"))
            stages.append(
                Stage(
                    f"downstream_{run}",
                    f"SUPERB runs ({', '.join(cfg.tasks)}) for {run}",
                    lambda up=up: _downstream(cfg, up, tasks, out),
                )
            )
    stages.append(
        Stage("report", "paired differences to random masking with bootstrap intervals", lambda: _report(cfg, out))
    )
    return stages


def run_ems_study(
    out: Path,
    quick: bool = False,
    redo: Sequence[str] = (),
    overrides: Optional[List[str]] = None,
    stage: Optional[str] = None,
) -> str:
    """Run (or finish) the study into ``out``; return the report and stage times as Markdown.
    ``stage``: only that stage, for the study running in ``out`` (its child processes)."""
    from ..utils.atomic import ensure_writable_dir

    out = ensure_writable_dir(out).resolve()
    cfg = load_study_config(quick, overrides)
    return run_staged_job(
        "ems-study",
        out,
        build_stages(cfg, out),
        "report/ems_study.md",
        redo=redo,
        stage=stage,
        workers=cfg.stage_workers,
        quick=quick,
        overrides=overrides or [],
    )
