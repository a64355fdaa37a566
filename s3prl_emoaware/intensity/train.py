"""Training and evaluation of StrengthNet on any emotion-labelled corpus.

Only what a real corpus has is used for training: one emotion label per utterance and the
speaker. Targets come from the relative-attributes ranker (:mod:`.ranker`) fitted on the
training speakers only. Per utterance: the ranker's strength for emotional utterances
(optionally raised to at least ``emotional_floor``), 0 for neutral ones. Per frame
(``StrengthNetTrainingConfig``):

- ``frame_targets``: ``repeat`` (the paper: the utterance target on every frame) or
  ``windowed`` (the ranker on windows around each frame);
- ``vad_db``: frames more than that many dB below the clip's loudest frame are not speech
  and get target 0 (``null``: off, the paper); ``vad_scope: edges`` gives target 0 only to the
  leading and trailing non-speech (the silence around the clip), not to the pauses between words;
- ``splice_per_emotional``: concatenation augmentation. Each epoch, that many examples per
  emotional training utterance are made by splicing it with a neutral utterance of the same
  speaker (random order; the silence at the junction trimmed to a random gap of
  ``splice_gap_seconds`` where ``vad_db`` or ``splice_trim_db`` finds it, else kept whole); the
  frame target is 0 on the neutral part and the emotional utterance's targets on the other, so
  localisation is learnt from utterance labels only.

Loss = ``utterance_loss_weight`` MAE(utterance) + ``frame_loss_weight`` MAE(frame, valid
frames) + ``emotion_loss_weight`` CE(emotion). The utterance target is the ranker's score
(``utterance_target: ranker``, the paper) or the mean of the frame targets (``frame_mean``,
consistent with the model's utterance output, the mean of its frames; spliced examples
always use it). Validation speakers are held out by speaker (never seen in training or by
the ranker), with spliced validation examples drawn once; training stops early when the
validation loss has not improved for ``patience`` epochs. The best checkpoint (plain tensors
and dicts, loads with ``weights_only=True``) is written atomically as
``EXPDIR/strengthnet.ckpt`` with the ranker as ``EXPDIR/ranker.json``; TensorBoard logs go
to ``EXPDIR`` (a resumed run's hide the interrupted run's from its first batch on); ``EXPDIR/metrics.json`` holds the held-out evaluation (:func:`evaluate_strengthnet`)
and, for every ``eval_corpora`` folder, the same figures on all its labelled utterances.

The emotional-segment sidecar of generated corpora is read by the evaluation only.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..checkpoints import load_strengthnet
from ..config import to_dict
from ..corpora.reader import Utterance, read_corpus
from ..utils.atomic import atomic_torch_save, atomic_write_json, ensure_writable_dir
from ..utils.audio import DEFAULT_MAX_BAD_FRACTION, AudioError, AudioReport, read_audio
from ..utils.errors import UserFacingError
from ..utils.locks import locks_folder
from ..utils.signals import Interrupted, graceful_stop
from ..utils.tensorboard import summary_writer
from .acoustic import speech_frames, utterance_statistics
from .alignment import STRENGTHNET_GRID
from .ranker import CALIBRATIONS, NEUTRAL, RelativeAttributeRanker
from .strengthnet import MelFrontend, StrengthNet, StrengthNetConfig

logger = logging.getLogger(__name__)

__all__ = [
    "StrengthNetTrainingConfig",
    "StrengthNetRecipe",
    "train_strengthnet",
    "evaluate_strengthnet",
    "load_strengthnet",
    "predict_frames",
    "windowed_targets",
    "splice",
]

FRAME_TARGETS = ("repeat", "windowed")
UTTERANCE_TARGETS = ("ranker", "frame_mean")
VAD_SCOPES = ("all", "edges")


@dataclass
class StrengthNetTrainingConfig:
    """Args:
    frame_targets: ``repeat`` (the paper: the utterance score on every frame) or ``windowed``
        (our option: the ranker applied to ``window_seconds`` windows around each frame, so the
        target follows the prosody inside the utterance; the utterance target stays the paper's).
    window_seconds: window of the ``windowed`` frame targets.
    calibration: how ranker scores map to [0, 1] per emotion (:mod:`.ranker`): ``percentile``
        or ``minmax``.
    emotional_floor: emotional utterances' target is ``floor + (1 - floor) * ranker strength``
        (0: the ranker's strength as is; a label says the utterance is emotional, so a floor keeps
        its weakest utterances off the neutral level).
    vad_db: frame target 0 where the frame is more than this many dB under the clip's loudest
        frame (energy voice-activity test); null: no VAD (the paper).
    vad_scope: which non-speech frames ``vad_db`` sets to 0: ``all`` (every pause) or ``edges``
        (only the silence before the first and after the last speech frame; the pauses between
        words keep the utterance's target, as an emotional segment's own pauses do).
    splice_per_emotional: concatenation-augmented examples per emotional training utterance and
        epoch (0: none).
    splice_gap_seconds: range of the silence kept at the junction of a spliced example. The junction's
        non-speech is found by ``vad_db``'s test, else by ``splice_trim_db``'s; with neither (the
        default) nothing is trimmed and the clips meet with their own silences (about 0.3 s of
        padding on each side of the junction on the generated corpora), whatever this range says.
    splice_trim_db: the speech test (dB under the clip's loudest frame) that finds the junction's
        non-speech to trim when ``vad_db`` is null; it sets no frame target. Null: no trimming.
    utterance_target: ``ranker`` (the paper) or ``frame_mean`` (the mean of the frame targets).
    frame_loss_weight, utterance_loss_weight, emotion_loss_weight: loss weights.
    epochs: maximum epochs.
    batch_size: utterances per batch (random, re-drawn every epoch; see ``_batches``).
    lr: Adam learning rate (the paper: 1e-4 with many more epochs).
    patience: epochs without validation improvement before stopping (the paper: 30).
    val_speaker_fraction: share of speakers held out for validation and evaluation.
    max_bad_fraction: share of the corpus' audio files that may be unusable (skipped and listed)
        before training is refused as on the wrong folder.
    seed: data split, initialisation, splices and batch order.
    """

    frame_targets: str = "repeat"
    window_seconds: float = 1.0
    calibration: str = "percentile"
    emotional_floor: float = 0.0
    vad_db: Optional[float] = None
    vad_scope: str = "all"
    splice_per_emotional: float = 0.0
    splice_gap_seconds: List[float] = field(default_factory=lambda: [0.05, 0.3])
    splice_trim_db: Optional[float] = None
    utterance_target: str = "ranker"
    frame_loss_weight: float = 1.0
    utterance_loss_weight: float = 1.0
    emotion_loss_weight: float = 1.0
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1.0e-3
    patience: int = 6
    val_speaker_fraction: float = 0.2
    max_bad_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        for name, value, choices in (
            ("frame_targets", self.frame_targets, FRAME_TARGETS),
            ("calibration", self.calibration, CALIBRATIONS),
            ("utterance_target", self.utterance_target, UTTERANCE_TARGETS),
            ("vad_scope", self.vad_scope, VAD_SCOPES),
        ):
            if value not in choices:
                raise ValueError(f"training.{name} must be one of {', '.join(choices)}, got {value!r}")
        if not 0.0 <= self.emotional_floor < 1.0:
            raise ValueError(f"training.emotional_floor must be in [0, 1), got {self.emotional_floor}")
        if self.splice_per_emotional < 0:
            raise ValueError(f"training.splice_per_emotional must be >= 0, got {self.splice_per_emotional}")
        gap = self.splice_gap_seconds
        if len(gap) != 2 or not 0 <= gap[0] <= gap[1]:
            raise ValueError(f"training.splice_gap_seconds must be [min, max] with 0 <= min <= max, got {gap}")
        from ..config import check_fraction, check_non_negative, check_positive

        check_positive(self, "epochs", "batch_size", "lr", "patience", "window_seconds")
        check_non_negative(self, "frame_loss_weight", "utterance_loss_weight", "emotion_loss_weight")
        check_fraction(self, "val_speaker_fraction", low_open=True, high_open=True)
        if self.vad_db is not None:
            check_positive(self, "vad_db")
        if self.splice_trim_db is not None:
            check_positive(self, "splice_trim_db")


@dataclass
class StrengthNetRecipe:
    """``upstream_configs/strengthnet.yaml``: the model and its training."""

    model: StrengthNetConfig = field(default_factory=StrengthNetConfig)
    training: StrengthNetTrainingConfig = field(default_factory=StrengthNetTrainingConfig)


@dataclass
class _Item:
    """One training example: mel (T, n_mels), speech (T,) bool, frame target (T,), utterance target."""

    utt: Utterance
    mel: torch.Tensor
    speech: torch.Tensor
    frame_target: torch.Tensor
    target: float = 0.0
    label: int = 0
    emotional: Optional[Tuple[int, int]] = None  # frames [start, end) of the emotional part of a splice
    voiced: Optional[torch.Tensor] = None  # (T,) bool: the speech test that trims a splice's junction (else speech)


def split_speakers(speakers: Sequence[str], fraction: float, seed: int) -> Tuple[List[str], List[str]]:
    """Deterministic speaker split: (train speakers, held-out speakers), at least one held out."""
    unique = sorted(set(speakers))
    if len(unique) < 2:
        raise UserFacingError("StrengthNet training needs at least two speakers (one is held out)")
    rng = random.Random(seed)
    rng.shuffle(unique)
    n_val = max(1, round(fraction * len(unique)))
    return sorted(unique[n_val:]), sorted(unique[:n_val])


def _load(
    utterances: Sequence[Utterance],
    what: str = "StrengthNet training data",
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
) -> Tuple[List[Tuple[Utterance, np.ndarray]], Dict]:
    """The decoded clips; unusable files are skipped and listed (more than ``max_bad_fraction``: an error)."""
    loaded = []
    report = AudioReport(what, 16000, max_bad_fraction)
    report.count(len(utterances))
    for u in utterances:
        try:
            loaded.append(
                (u, read_audio(u.path, expected_rate=16000, min_samples=STRENGTHNET_GRID.window, report=report))
            )
        except AudioError as err:
            report.skip(u.utt_id, str(err))
    report.finish()
    return loaded, dict(report.skipped)


def _batches(items: List[_Item], batch_size: int, rng: Optional[random.Random]):
    """Evaluation (``rng`` None): length-sorted batches, one fixed order. Training: random batches,
    re-drawn every epoch. Length-sorted training batches were the same every epoch and, since
    emotions differ in speaking rate (generated ESD: sad 3.6 s, neutral 2.8 s, angry 2.1 s on
    average), 88 % of each batch was one emotion: the emotion loss stayed at chance and the
    strength output at a constant (measured). The model masks padding, so mixing lengths only
    costs padded compute (utterances of emotional corpora are a few seconds)."""
    order = list(range(len(items)))
    if rng is None:
        order.sort(key=lambda i: items[i].mel.shape[0])
    else:
        rng.shuffle(order)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in batches:
        mels = nn.utils.rnn.pad_sequence([items[i].mel for i in batch], batch_first=True)
        lengths = torch.tensor([items[i].mel.shape[0] for i in batch])
        targets = torch.tensor([items[i].target for i in batch], dtype=torch.float32)
        labels = torch.tensor([items[i].label for i in batch])
        frame_targets = nn.utils.rnn.pad_sequence([items[i].frame_target for i in batch], batch_first=True)
        yield batch, mels, lengths, (targets, frame_targets), labels


def _loss(model, mels, lengths, targets, labels, cfg: StrengthNetTrainingConfig):
    targets, frame_targets = targets
    frame, utterance, logits = model(mels, lengths)
    mask = torch.arange(mels.shape[1])[None, :] < lengths[:, None]
    frame_mae = ((frame - frame_targets).abs() * mask).sum() / mask.sum()
    utt_mae = (utterance - targets).abs().mean()
    ce = nn.functional.cross_entropy(logits, labels)
    loss = cfg.utterance_loss_weight * utt_mae + cfg.frame_loss_weight * frame_mae + cfg.emotion_loss_weight * ce
    return loss, {"utt_mae": utt_mae.item(), "frame_mae": frame_mae.item(), "ce": ce.item()}


def _mels(frontend: MelFrontend, wav: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return frontend(torch.from_numpy(wav)[None])[0]


def _floored(cfg: StrengthNetTrainingConfig, strength):
    """An emotional utterance's (or frame's) target from the ranker's strength: ``emotional_floor``
    raises it off the neutral level."""
    return cfg.emotional_floor + (1 - cfg.emotional_floor) * strength


def _make_item(
    u: Utterance,
    wav: np.ndarray,
    mel: torch.Tensor,
    target: float,
    label: int,
    cfg: StrengthNetTrainingConfig,
    ranker: RelativeAttributeRanker,
) -> _Item:
    n = mel.shape[0]
    if cfg.vad_db is None:
        speech = torch.ones(n, dtype=torch.bool)
    else:
        speech = torch.from_numpy(speech_frames(wav, STRENGTHNET_GRID, n, cfg.vad_db))
    if target == 0.0:
        frame_target = torch.zeros(n)
    elif cfg.frame_targets == "windowed":
        strength = windowed_targets(ranker, wav, u.emotion, n, cfg.window_seconds)
        frame_target = _floored(cfg, strength)
    else:
        frame_target = torch.full((n,), float(target))
    frame_target = frame_target * (speech if cfg.vad_scope == "all" else between_edges(speech))
    if cfg.utterance_target == "frame_mean":
        target = float(frame_target.mean())
    voiced = None
    if cfg.vad_db is None and cfg.splice_trim_db is not None:
        voiced = torch.from_numpy(speech_frames(wav, STRENGTHNET_GRID, n, cfg.splice_trim_db))
    return _Item(u, mel, speech, frame_target.float(), float(target), label, voiced=voiced)


def speech_bounds(speech: torch.Tensor) -> Optional[Tuple[int, int]]:
    """Frames [start, end) from the first to the last speech frame of a (T,) bool; None without speech."""
    idx = torch.nonzero(speech).flatten()
    return (int(idx[0]), int(idx[-1]) + 1) if idx.numel() else None


def between_edges(speech: torch.Tensor) -> torch.Tensor:
    """(T,) bool: True from the first to the last speech frame (the pauses between them included),
    False on the leading and trailing non-speech; all False when no frame is speech."""
    out = torch.zeros_like(speech, dtype=torch.bool)
    bounds = speech_bounds(speech)
    if bounds is not None:
        out[bounds[0] : bounds[1]] = True
    return out


def splice(first: _Item, second: _Item, gap_frames: int) -> _Item:
    """One example of ``first`` then ``second``: the non-speech frames at the junction are trimmed so
    that at most ``gap_frames`` of them remain (as many from each side as it has, up to half); the
    label is the emotional part's, the utterance target the mean of the frame targets."""

    voiced1 = first.speech if first.voiced is None else first.voiced
    voiced2 = second.speech if second.voiced is None else second.voiced
    _, end1 = speech_bounds(voiced1) or (0, first.mel.shape[0])
    start2, _ = speech_bounds(voiced2) or (0, second.mel.shape[0])
    tail1 = first.mel.shape[0] - end1
    keep1 = min(tail1, gap_frames - gap_frames // 2)
    keep2 = min(start2, gap_frames - keep1)
    keep1 = min(tail1, gap_frames - keep2)
    a, b = slice(0, end1 + keep1), slice(start2 - keep2, None)
    mel = torch.cat([first.mel[a], second.mel[b]])
    frame_target = torch.cat([first.frame_target[a], second.frame_target[b]])
    speech = torch.cat([first.speech[a], second.speech[b]])
    voiced = None if first.voiced is None or second.voiced is None else torch.cat([first.voiced[a], second.voiced[b]])
    n1 = end1 + keep1
    emotional_first = first.frame_target.max() > 0
    span = (0, n1) if emotional_first else (n1, mel.shape[0])
    source = first if emotional_first else second
    utt = Utterance(f"{first.utt.utt_id}+{second.utt.utt_id}", source.utt.path, source.utt.speaker, source.utt.emotion)
    return _Item(utt, mel, speech, frame_target, float(frame_target.mean()), source.label, span, voiced)


def _splices(items: Sequence[_Item], per_emotional: float, gap: Tuple[float, float], rng: random.Random) -> List[_Item]:
    """Concatenation-augmented examples: each emotional item with a neutral item of its speaker
    (of any speaker if its own has none), in random order."""
    neutral = [it for it in items if it.utt.emotion == NEUTRAL]
    emotional = [it for it in items if it.utt.emotion != NEUTRAL and it.target > 0]
    if not neutral or not emotional or per_emotional <= 0:
        return []
    by_speaker: Dict[str, List[_Item]] = {}
    for it in neutral:
        by_speaker.setdefault(it.utt.speaker, []).append(it)
    frames_per_second = STRENGTHNET_GRID.sample_rate / STRENGTHNET_GRID.hop
    n = int(round(per_emotional * len(emotional)))
    out = []
    for k in range(n):
        emo = emotional[k % len(emotional)] if n >= len(emotional) else rng.choice(emotional)
        neu = rng.choice(by_speaker.get(emo.utt.speaker) or neutral)
        gap_frames = int(round(rng.uniform(*gap) * frames_per_second))
        out.append(splice(emo, neu, gap_frames) if rng.random() < 0.5 else splice(neu, emo, gap_frames))
    return out


def _labelled(corpus, emotions: Sequence[str]) -> List[Utterance]:
    labelled = [u for u in read_corpus(corpus) if u.emotion in emotions]
    if not labelled:
        raise UserFacingError(f"{corpus}: no utterance labelled with {list(emotions)}")
    return labelled


RESUME_KIND = "strengthnet_training"


def _as_tuple(value):
    """``random.Random.getstate()`` as saved (tuples may come back as lists)."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _resume_state(path: Path, recipe: StrengthNetRecipe) -> Optional[dict]:
    """The training state of an interrupted run in ``path`` (None: there is none), checked
    against ``recipe`` (``training.epochs`` may differ)."""
    from ..checkpoints import read_checkpoint, require

    if not path.is_file():
        return None
    state = read_checkpoint(path, (RESUME_KIND,))
    require(state, ("model", "optimizer", "epoch", "batches_done", "rng", "torch_rng", "config"), path, RESUME_KIND)
    ours, theirs = to_dict(recipe), state["config"]
    differ = [
        f"{section}.{k}"
        for section in ("model", "training")
        for k in ours[section]
        if k != "epochs" and theirs.get(section, {}).get(k) != ours[section][k]
    ]
    if differ:
        raise UserFacingError(
            f"{path}: was made with another recipe ({', '.join(differ[:4])} differ); resume "
            "with the same config, or train into a new --out"
        )
    return state


@locks_folder("out", "StrengthNet output folder")
def train_strengthnet(
    corpus, out, recipe: StrengthNetRecipe, eval_corpora: Sequence = (), resume: bool = False
) -> Dict:
    """Train on the emotion-labelled utterances of ``corpus``; return the held-out metrics (and those
    of every corpus in ``eval_corpora``, evaluated on all its labelled utterances).

    ``EXPDIR/resume.ckpt`` holds the training state after every epoch, and after the batch under
    way on SIGINT/SIGTERM (then :class:`Interrupted` is raised); ``resume=True`` continues from it
    with the losses an uninterrupted run has (the epoch's splices and batch order are redrawn
    from the random state at its start, the batches done are skipped)."""
    from tqdm import tqdm

    out = ensure_writable_dir(out)
    cfg, model_cfg = recipe.training, recipe.model
    torch.manual_seed(cfg.seed)
    labelled = _labelled(corpus, model_cfg.emotions)
    eval_sets = {str(c): _labelled(c, model_cfg.emotions) for c in eval_corpora}  # fail before training
    train_spk, val_spk = split_speakers([u.speaker for u in labelled], cfg.val_speaker_fraction, cfg.seed)
    frontend = MelFrontend(model_cfg.n_mels, model_cfg.log_mel)
    loaded, failed = _load(labelled, f"{corpus} (StrengthNet training)", cfg.max_bad_fraction)
    stats = np.stack([utterance_statistics(w) for _, w in tqdm(loaded, desc="statistics", leave=False)])
    is_train = np.array([u.speaker in train_spk for u, _ in loaded])
    emotions = [u.emotion for u, _ in loaded]
    ranker = RelativeAttributeRanker(seed=cfg.seed, calibration=cfg.calibration).fit(
        stats[is_train], np.array(emotions)[is_train], np.array([u.speaker for u, _ in loaded])[is_train]
    )
    strength = ranker.strength(stats, emotions)
    targets = np.where(np.array(emotions) == NEUTRAL, 0.0, _floored(cfg, strength))
    targets[[e not in ranker.weights for e in emotions]] = 0.0  # emotions the ranker could not rank
    ranker.save(out / "ranker.json")
    label_index = {e: i for i, e in enumerate(model_cfg.emotions)}
    items = [
        _make_item(u, w, _mels(frontend, w), float(t), label_index[u.emotion], cfg, ranker)
        for (u, w), t in zip(tqdm(loaded, desc="targets", leave=False), targets)
    ]
    train_items = [it for it, tr in zip(items, is_train) if tr]
    val_items = [it for it, tr in zip(items, is_train) if not tr]
    gap = tuple(cfg.splice_gap_seconds)
    # the held-out splices are drawn once, with a fixed number per emotional utterance, so the
    # validation loss (early stopping) and the spliced-localisation figure see the frame targets
    val_splices = _splices(val_items, max(1.0, cfg.splice_per_emotional), gap, random.Random(cfg.seed + 1))
    val_examples = val_items + (val_splices if cfg.splice_per_emotional > 0 else [])

    model = StrengthNet(model_cfg)
    model.to(memory_format=torch.channels_last)  # CPU convolutions about 12 % faster per step (measured)
    model.set_input_statistics([it.mel for it in train_items])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = random.Random(cfg.seed)
    best, best_epoch, step = math.inf, -1, 0
    start, skip, resume_path = 0, 0, out / "resume.ckpt"
    state = _resume_state(resume_path, recipe) if resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.setstate(_as_tuple(state["rng"]))
        torch.set_rng_state(state["torch_rng"])
        start, skip, step = int(state["epoch"]), int(state["batches_done"]), int(state["step"])
        best, best_epoch = float(state["best"]), int(state["best_epoch"])
        logger.info("resumed from %s at epoch %d, batch %d", resume_path, start, skip)
    # resumed: the interrupted run's events from the next batch on are hidden by this run's
    writer = summary_writer(out, purge_step=step + 1 if state is not None else None)

    def save_state(epoch: int, batches_done: int, rng_state) -> None:
        atomic_torch_save(
            {
                "format": "s3prl_emoaware",
                "kind": RESUME_KIND,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "batches_done": batches_done,
                "rng": rng_state,
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "best": best,
                "best_epoch": best_epoch,
                "config": to_dict(recipe),
            },
            resume_path,
        )

    with graceful_stop() as stop:
        for epoch in tqdm(range(start, cfg.epochs), desc="train-strengthnet", initial=start, total=cfg.epochs):
            model.train()
            at_start = rng.getstate()
            examples = train_items + _splices(train_items, cfg.splice_per_emotional, gap, rng)
            for k, (_, mels, lengths, tgt, lab) in enumerate(_batches(examples, cfg.batch_size, rng)):
                if k < skip:  # done before the interruption
                    continue
                loss, parts = _loss(model, mels, lengths, tgt, lab, cfg)
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                step += 1
                writer.add_scalar("strengthnet/train-loss", loss.item(), step)
                for name, value in parts.items():
                    writer.add_scalar(f"strengthnet/train-{name}", value, step)
                if stop.requested:
                    save_state(epoch, k + 1, at_start)
                    writer.close()
                    raise Interrupted(stop.signum, f"epoch {epoch}, batch {k + 1}", str(resume_path))
            skip = 0
            model.eval()
            with torch.no_grad():
                val = [
                    (_loss(model, m, l, t, y, cfg)[0].item(), len(b))
                    for b, m, l, t, y in _batches(val_examples, cfg.batch_size, None)
                ]
            val_loss = sum(v * n for v, n in val) / max(1, sum(n for _, n in val))
            writer.add_scalar("strengthnet/val-loss", val_loss, epoch)
            stopping = False
            if val_loss < best - 1e-4:
                best, best_epoch = val_loss, epoch
                atomic_torch_save(
                    {
                        "model": model.state_dict(),
                        "config": to_dict(model_cfg),
                        "epoch": epoch,
                        "val_loss": val_loss,
                        "train_speakers": train_spk,
                        "val_speakers": val_spk,
                    },
                    out / "strengthnet.ckpt",
                )
            elif epoch - best_epoch >= cfg.patience:
                logger.info("early stop at epoch %d (best %d, val loss %.4f)", epoch, best_epoch, best)
                stopping = True
            save_state(cfg.epochs if stopping else epoch + 1, 0, rng.getstate())  # an early stop stays stopped
            if stopping:
                break
            if stop.requested:  # the signal came during validation
                writer.close()
                raise Interrupted(stop.signum, f"the end of epoch {epoch}", str(resume_path))
    writer.close()
    model = load_strengthnet(out / "strengthnet.ckpt")
    metrics = evaluate_strengthnet(
        model, frontend, [it.utt for it in val_items], {it.utt.utt_id: it.mel for it in val_items}, spliced=val_splices
    )
    metrics.update(
        {
            "best_epoch": best_epoch,
            "val_loss": best,
            "val_speakers": val_spk,
            "n_train": len(train_items),
            "n_val": len(val_items),
            "skipped": failed,
        }
    )
    if eval_sets:
        metrics["cross_corpus"] = {
            name: evaluate_strengthnet(model, frontend, utts) for name, utts in eval_sets.items()
        }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def windowed_targets(
    ranker: RelativeAttributeRanker, wav: np.ndarray, emotion: str, n_frames: int, window_seconds: float
) -> torch.Tensor:
    """Frame targets on StrengthNet's grid: the ranker's strength of a window centred on each of a
    set of anchor times (every 0.1 s), linearly interpolated; 0 everywhere for neutral speech."""
    if emotion not in ranker.weights:
        return torch.zeros(n_frames)
    half = int(window_seconds * 16000 / 2)
    anchors = np.arange(0, len(wav), 1600)
    scores = []
    for a in anchors:
        seg = wav[max(0, a - half) : a + half]
        if len(seg) < 4000:  # too short for statistics: take the utterance's
            seg = wav
        scores.append(ranker.strength(utterance_statistics(seg), [emotion])[0])
    times = STRENGTHNET_GRID.centres(n_frames)
    return torch.from_numpy(np.interp(times, anchors / 16000, scores).astype(np.float32))


def predict_frames(model: StrengthNet, mels: Sequence[torch.Tensor]) -> List[np.ndarray]:
    """Frame strengths (on StrengthNet's grid) for a batch of mel spectrograms."""
    lengths = torch.tensor([m.shape[0] for m in mels])
    with torch.no_grad():
        frame, _, _ = model(nn.utils.rnn.pad_sequence(list(mels), batch_first=True), lengths)
    return [f[:n].numpy() for f, n in zip(frame, lengths.tolist())]


def _predict_all(model: StrengthNet, mels: Sequence[torch.Tensor], batch_size: int = 16) -> List[np.ndarray]:
    """``predict_frames`` over length-sorted batches, results in the input order."""
    order = sorted(range(len(mels)), key=lambda i: mels[i].shape[0])
    out: List[Optional[np.ndarray]] = [None] * len(mels)
    for k in range(0, len(order), batch_size):
        chunk = order[k : k + batch_size]
        for i, curve in zip(chunk, predict_frames(model, [mels[i] for i in chunk])):
            out[i] = curve
    return out


def localisation_wins(frames: np.ndarray, segment: Tuple[float, float]) -> Optional[bool]:
    """For a clip that starts neutral and turns emotional at ``segment[0]`` s: is the mean frame score
    inside the emotional segment above the mean over the neutral speech before it (the frames
    between 0.15 s and 80 ms before the segment: no leading silence, no junction pause)? None if
    either part has no frame."""
    t = STRENGTHNET_GRID.centres(len(frames))
    inside = (t >= segment[0]) & (t <= segment[1])
    outside = (t > 0.15) & (t < segment[0] - 0.08)
    if not inside.any() or not outside.any():
        return None
    return bool(frames[inside].mean() > frames[outside].mean())


def evaluate_strengthnet(
    model: StrengthNet,
    frontend: MelFrontend,
    utterances: Sequence[Utterance],
    mels: Optional[Dict[str, torch.Tensor]] = None,
    spliced: Sequence[_Item] = (),
) -> Dict:
    """Held-out figures of a StrengthNet; an utterance's intensity is the mean of its frame scores.

    - ``auc_emotional_vs_neutral`` (and Spearman with the binary label);
    - ``level_difference``: mean intensity of emotional utterances minus that of neutral ones
      (with ``mean_intensity_by_emotion``);
    - ``localisation``: share of mixed utterances (neutral start, emotional end, from the
      generator's sidecar: evaluation only) whose frames inside the emotional segment score
      above the neutral lead (:func:`localisation_wins`; also ``mixed_inside_above_outside``);
    - ``localisation_spliced``: the same test on ``spliced`` examples (neutral and emotional
      utterances of held-out speakers concatenated): the emotional part's mean frame score above
      the neutral part's speech frames.
    """
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    mels = dict(mels or {})
    for u in utterances:
        if u.utt_id not in mels:
            mels[u.utt_id] = _mels(frontend, read_audio(u.path))
    curves = _predict_all(model, [mels[u.utt_id] for u in utterances])
    utt_scores = np.array([float(c.mean()) for c in curves])
    is_emotional = np.array([int(u.emotion != NEUTRAL) for u in utterances])
    wins = [
        localisation_wins(c, u.emotional_segment)
        for u, c in zip(utterances, curves)
        if u.emotional_segment and u.emotion != NEUTRAL and u.emotional_segment[0] > 0.3
    ]
    wins = [w for w in wins if w is not None]
    localisation = float(np.mean(wins)) if wins else None
    metrics: Dict = {
        "n_utterances": len(utterances),
        "n_mixed": len(wins),
        "localisation": localisation,
        "mixed_inside_above_outside": localisation,
    }
    by_emotion = {}
    for e in sorted({u.emotion for u in utterances}):
        sel = np.array([u.emotion == e for u in utterances])
        by_emotion[e] = float(utt_scores[sel].mean())
    metrics["mean_intensity_by_emotion"] = by_emotion
    if 0 < is_emotional.sum() < len(is_emotional):
        metrics["auc_emotional_vs_neutral"] = float(roc_auc_score(is_emotional, utt_scores))
        metrics["spearman_emotional_vs_neutral"] = float(spearmanr(utt_scores, is_emotional)[0])
        metrics["level_difference"] = float(utt_scores[is_emotional == 1].mean() - utt_scores[is_emotional == 0].mean())
    if spliced:
        spliced_wins = []
        for item, curve in zip(spliced, _predict_all(model, [it.mel for it in spliced])):
            a, b = item.emotional
            inside = np.zeros(len(curve), dtype=bool)
            inside[a:b] = True
            speech = item.speech.numpy()
            if (inside & speech).any() and (~inside & speech).any():
                spliced_wins.append(curve[inside & speech].mean() > curve[~inside & speech].mean())
        metrics["n_spliced"] = len(spliced_wins)
        metrics["localisation_spliced"] = float(np.mean(spliced_wins)) if spliced_wins else None
    return metrics
