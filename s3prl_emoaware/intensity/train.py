"""Training and evaluation of StrengthNet on any emotion-labelled corpus.

Targets come from the relative-attributes ranker (:mod:`.ranker`) fitted on the training
speakers only; the frame target is the utterance target repeated (as in the original).
Loss = MAE(utterance) + MAE(frame, valid frames) + CE(emotion), equal weights. Validation
speakers are held out by speaker (never seen in training or by the ranker); training stops
early when the validation loss has not improved for ``patience`` epochs. The best
checkpoint (plain tensors and dicts, loads with ``weights_only=True``) is written
atomically as ``EXPDIR/strengthnet.ckpt`` with the ranker as ``EXPDIR/ranker.joblib``;
TensorBoard logs go to ``EXPDIR``; ``EXPDIR/metrics.json`` holds the held-out evaluation.
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

from ..config import from_dict, to_dict
from ..corpora.reader import Utterance, read_corpus
from ..utils.atomic import atomic_torch_save, atomic_write_json, ensure_writable_dir
from ..utils.audio import AudioError, read_audio
from ..utils.errors import UserFacingError
from .acoustic import utterance_statistics
from .alignment import STRENGTHNET_GRID
from .ranker import RelativeAttributeRanker
from .strengthnet import MelFrontend, StrengthNet, StrengthNetConfig

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "StrengthNetRecipe", "train_strengthnet", "evaluate_strengthnet", "load_strengthnet"]


@dataclass
class TrainConfig:
    """Args:
        frame_targets: ``repeat`` (the paper: the utterance score on every frame) or ``windowed``
            (our option: the ranker applied to ``window_seconds`` windows around each frame, so the
            target follows the prosody inside the utterance; the utterance target stays the paper's).
        window_seconds: window of the ``windowed`` frame targets.
        epochs: maximum epochs.
        batch_size: utterances per batch (length-sorted buckets).
        lr: Adam learning rate (the paper: 1e-4 with many more epochs).
        patience: epochs without validation improvement before stopping (the paper: 30).
        val_speaker_fraction: share of speakers held out for validation and evaluation.
        seed: data split, initialisation and batch order.
    """

    frame_targets: str = "repeat"
    window_seconds: float = 1.0
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1.0e-3
    patience: int = 6
    val_speaker_fraction: float = 0.2
    seed: int = 0


@dataclass
class StrengthNetRecipe:
    """``upstream_configs/strengthnet.yaml``: the model and its training."""

    model: StrengthNetConfig = field(default_factory=StrengthNetConfig)
    training: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class _Item:
    utt: Utterance
    mel: torch.Tensor
    target: float = 0.0
    label: int = 0
    frame_target: Optional[torch.Tensor] = None  # (T,) for windowed targets


def split_speakers(speakers: Sequence[str], fraction: float, seed: int) -> Tuple[List[str], List[str]]:
    """Deterministic speaker split: (train speakers, held-out speakers), at least one held out."""
    unique = sorted(set(speakers))
    if len(unique) < 2:
        raise UserFacingError("StrengthNet training needs at least two speakers (one is held out)")
    rng = random.Random(seed)
    rng.shuffle(unique)
    n_val = max(1, round(fraction * len(unique)))
    return sorted(unique[n_val:]), sorted(unique[:n_val])


def _load(utterances: Sequence[Utterance], frontend: MelFrontend) -> Tuple[List[Tuple[Utterance, np.ndarray]], Dict]:
    loaded, failed = [], {}
    for u in utterances:
        try:
            loaded.append((u, read_audio(u.path, expected_rate=16000, min_samples=STRENGTHNET_GRID.window)))
        except AudioError as err:
            failed[u.utt_id] = str(err)
            logger.warning("skipped: %s", err)
    return loaded, failed


def _batches(items: List[_Item], batch_size: int, rng: Optional[random.Random]):
    order = sorted(range(len(items)), key=lambda i: items[i].mel.shape[0])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    for batch in batches:
        mels = nn.utils.rnn.pad_sequence([items[i].mel for i in batch], batch_first=True)
        lengths = torch.tensor([items[i].mel.shape[0] for i in batch])
        targets = torch.tensor([items[i].target for i in batch], dtype=torch.float32)
        labels = torch.tensor([items[i].label for i in batch])
        frame_targets = nn.utils.rnn.pad_sequence(
            [items[i].frame_target if items[i].frame_target is not None
             else torch.full((items[i].mel.shape[0],), items[i].target) for i in batch], batch_first=True)
        yield batch, mels, lengths, (targets, frame_targets), labels


def _loss(model, mels, lengths, targets, labels):
    targets, frame_targets = targets
    frame, utterance, logits = model(mels, lengths)
    mask = torch.arange(mels.shape[1])[None, :] < lengths[:, None]
    frame_mae = ((frame - frame_targets).abs() * mask).sum() / mask.sum()
    utt_mae = (utterance - targets).abs().mean()
    ce = nn.functional.cross_entropy(logits, labels)
    return utt_mae + frame_mae + ce, {"utt_mae": utt_mae.item(), "frame_mae": frame_mae.item(), "ce": ce.item()}


def _mels(frontend: MelFrontend, wav: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return frontend(torch.from_numpy(wav)[None])[0]


def train_strengthnet(corpus, out, recipe: StrengthNetRecipe) -> Dict:
    """Train on the emotion-labelled utterances of ``corpus``; return the held-out metrics."""
    from tensorboardX import SummaryWriter
    from tqdm import tqdm

    out = ensure_writable_dir(out)
    cfg, model_cfg = recipe.training, recipe.model
    torch.manual_seed(cfg.seed)
    labelled = [u for u in read_corpus(corpus) if u.emotion in model_cfg.emotions]
    if not labelled:
        raise UserFacingError(f"{corpus}: no utterance labelled with {model_cfg.emotions}")
    train_spk, val_spk = split_speakers([u.speaker for u in labelled], cfg.val_speaker_fraction, cfg.seed)
    frontend = MelFrontend(model_cfg.n_mels, model_cfg.log_mel)
    loaded, failed = _load(labelled, frontend)
    stats = np.stack([utterance_statistics(w) for _, w in tqdm(loaded, desc="statistics", leave=False)])
    is_train = np.array([u.speaker in train_spk for u, _ in loaded])
    emotions = [u.emotion for u, _ in loaded]
    ranker = RelativeAttributeRanker(seed=cfg.seed).fit(stats[is_train], np.array(emotions)[is_train],
                                                         np.array([u.speaker for u, _ in loaded])[is_train])
    targets = ranker.strength(stats, emotions)
    ranker.save(out / "ranker.joblib")
    label_index = {e: i for i, e in enumerate(model_cfg.emotions)}
    items = [_Item(u, _mels(frontend, w), float(t), label_index[u.emotion]) for (u, w), t in zip(loaded, targets)]
    if cfg.frame_targets == "windowed":
        for item, (_, wav) in zip(items, loaded):
            item.frame_target = windowed_targets(ranker, wav, item.utt.emotion, item.mel.shape[0], cfg.window_seconds)
    elif cfg.frame_targets != "repeat":
        raise UserFacingError(f"training.frame_targets must be repeat or windowed, got {cfg.frame_targets!r}")
    train_items = [it for it, tr in zip(items, is_train) if tr]
    val_items = [it for it, tr in zip(items, is_train) if not tr]

    model = StrengthNet(model_cfg)
    model.set_input_statistics([it.mel for it in train_items])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    writer = SummaryWriter(str(out))
    rng = random.Random(cfg.seed)
    best, best_epoch, step = math.inf, -1, 0
    for epoch in tqdm(range(cfg.epochs), desc="train-strengthnet"):
        model.train()
        for _, mels, lengths, tgt, lab in _batches(train_items, cfg.batch_size, rng):
            loss, parts = _loss(model, mels, lengths, tgt, lab)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
            writer.add_scalar("strengthnet/train-loss", loss.item(), step)
        model.eval()
        with torch.no_grad():
            val = [(_loss(model, m, l, t, y)[0].item(), len(b)) for b, m, l, t, y in
                   _batches(val_items, cfg.batch_size, None)]
        val_loss = sum(v * n for v, n in val) / max(1, sum(n for _, n in val))
        writer.add_scalar("strengthnet/val-loss", val_loss, epoch)
        if val_loss < best - 1e-4:
            best, best_epoch = val_loss, epoch
            atomic_torch_save({"model": model.state_dict(), "config": to_dict(model_cfg), "epoch": epoch,
                               "val_loss": val_loss, "train_speakers": train_spk, "val_speakers": val_spk},
                              out / "strengthnet.ckpt")
        elif epoch - best_epoch >= cfg.patience:
            logger.info("early stop at epoch %d (best %d, val loss %.4f)", epoch, best_epoch, best)
            break
    writer.close()
    model = load_strengthnet(out / "strengthnet.ckpt")
    metrics = evaluate_strengthnet(model, frontend, [it.utt for it in val_items],
                                   {it.utt.utt_id: it.mel for it in val_items})
    metrics.update({"best_epoch": best_epoch, "val_loss": best, "val_speakers": val_spk,
                    "n_train": len(train_items), "n_val": len(val_items), "skipped": failed})
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def windowed_targets(ranker: RelativeAttributeRanker, wav: np.ndarray, emotion: str, n_frames: int,
                     window_seconds: float) -> torch.Tensor:
    """Frame targets on StrengthNet's grid: the ranker's strength of a window centred on each of a
    set of anchor times (every 0.1 s), linearly interpolated; 0 everywhere for neutral speech."""
    if emotion not in ranker.weights:
        return torch.zeros(n_frames)
    half = int(window_seconds * 16000 / 2)
    anchors = np.arange(0, len(wav), 1600)
    scores = []
    for a in anchors:
        seg = wav[max(0, a - half):a + half]
        if len(seg) < 4000:  # too short for statistics: take the utterance's
            seg = wav
        scores.append(ranker.strength(utterance_statistics(seg), [emotion])[0])
    times = STRENGTHNET_GRID.centres(n_frames)
    return torch.from_numpy(np.interp(times, anchors / 16000, scores).astype(np.float32))


def load_strengthnet(path) -> StrengthNet:
    path = Path(path)
    if not path.is_file():
        raise UserFacingError(f"{path}: StrengthNet checkpoint not found (train one with "
                              "`s3prl-emoaware train-strengthnet`, or use --source energy)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = StrengthNet(from_dict(StrengthNetConfig, ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise UserFacingError(f"{path}: not a compatible StrengthNet checkpoint ({err})") from None
    return model.eval()


def predict_frames(model: StrengthNet, mels: Sequence[torch.Tensor]) -> List[np.ndarray]:
    """Frame strengths (on StrengthNet's grid) for a batch of mel spectrograms."""
    lengths = torch.tensor([m.shape[0] for m in mels])
    with torch.no_grad():
        frame, _, _ = model(nn.utils.rnn.pad_sequence(list(mels), batch_first=True), lengths)
    return [f[:n].numpy() for f, n in zip(frame, lengths.tolist())]


def evaluate_strengthnet(model: StrengthNet, frontend: MelFrontend, utterances: Sequence[Utterance],
                         mels: Optional[Dict[str, torch.Tensor]] = None) -> Dict:
    """Held-out checks: emotional vs neutral ranking (AUC, Spearman with the binary label) and
    whether frame scores are higher inside the recorded emotional segment of mixed utterances."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    mels = dict(mels or {})
    for u in utterances:
        if u.utt_id not in mels:
            mels[u.utt_id] = _mels(frontend, read_audio(u.path))
    utt_scores, is_emotional, inside_wins, n_mixed = [], [], 0, 0
    for u in utterances:
        frames = predict_frames(model, [mels[u.utt_id]])[0]
        utt_scores.append(float(frames.mean()))
        is_emotional.append(int(u.emotion != "neu"))
        seg = u.emotional_segment
        if seg and u.emotion != "neu" and seg[0] > 0.3:  # starts neutral, turns emotional part-way
            t = STRENGTHNET_GRID.centres(len(frames))
            inside = (t >= seg[0]) & (t <= seg[1])
            outside = (t > 0.15) & (t < seg[0] - 0.08)  # the neutral speech before it (no silences)
            if inside.any() and outside.any():
                n_mixed += 1
                inside_wins += frames[inside].mean() > frames[outside].mean()
    metrics: Dict = {"n_utterances": len(utterances), "n_mixed": n_mixed,
                     "mixed_inside_above_outside": inside_wins / n_mixed if n_mixed else None}
    if 0 < sum(is_emotional) < len(is_emotional):
        metrics["auc_emotional_vs_neutral"] = float(roc_auc_score(is_emotional, utt_scores))
        metrics["spearman_emotional_vs_neutral"] = float(spearmanr(utt_scores, is_emotional)[0])
    return metrics
