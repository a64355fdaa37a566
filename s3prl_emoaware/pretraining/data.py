"""Pre-training data that streams: a corpus index from audio headers, features per batch in
DataLoader workers, batches bounded by utterance count and/or padded frames.

Nothing is decoded before the first step: :func:`build_dataset` reads each file's header
(``soundfile.info``: frames and sample rate give the feature frame count by Kaldi's
``snip_edges`` rule), so the dataset holds paths and lengths only. Features (and intensity
curves, from the cache) are computed per item when a batch is drawn.

Batch order is a pure function of (seed, epoch): :func:`epoch_batches` packs the
length-sorted utterances greedily (at most ``batch_size`` utterances, at most
``max_frames_per_batch`` padded frames; 0 turns a bound off), then shuffles the batches with
``Random(seed, epoch)``; under DDP, rank r takes batches r, r + world, ... of a list cut to a
multiple of the world size, so every rank runs the same number of steps. Since the
micro-batch at any optimizer step is known from the step number alone, resuming needs no
sampler state.

A bad file is not fatal: one whose header is unusable (0 bytes, text, no samples) or too short
is left out of the index and listed (``max_bad_fraction`` of them at most, else an error,
through :class:`~s3prl_emoaware.utils.audio.AudioReport`, which also logs one line for what
reading the corpus does: resampled, downmixed, cropped); one that cannot be decoded (NaN
samples, a damaged stream) makes the dataset return a :class:`SkippedItem`, :func:`collate`
drops it and lists it in ``Batch.skipped``; the trainer warns once per file, sums them up
at the end of every epoch and counts them with the others against ``max_bad_fraction`` at
every checkpoint.

Why not lhotse's manifests and ``DynamicBucketingSampler``: lhotse 1.33 installs and runs
with torch 2.11 here, but on the 3,840-file corpus of ``bench/bench_pretrain_scale.py`` its
manifest took 0.81 s against 0.38 s for this header index, and its bucketing (0.11 s an
epoch) is no cheaper than this one (0.01 s); its resume needs the sampler's state in the
checkpoint, where these batches follow from the step number. No win for eight more packages.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ..corpora.reader import Utterance
from ..features import FbankConfig, FbankFrontend, num_frames
from ..utils.audio import DEFAULT_MAX_BAD_FRACTION, AudioError, AudioInfo, AudioReport, audio_info, read_audio
from ..utils.errors import UserFacingError

logger = logging.getLogger(__name__)

__all__ = [
    "PretrainEntry",
    "PretrainItem",
    "SkippedItem",
    "PretrainDataset",
    "Batch",
    "build_dataset",
    "epoch_batches",
    "collate",
    "header_frames",
]


@dataclass(frozen=True)
class PretrainEntry:
    """What the dataset keeps of one utterance: where it is and how many frames it gives (after the crop)."""

    utt_id: str
    path: str
    num_frames: int
    speaker: Optional[str] = None
    emotion: Optional[str] = None  # kept for analysis only; never used by the objectives


@dataclass
class PretrainItem:
    utt_id: str
    features: Tensor  # (T, D)
    intensity: Optional[np.ndarray]  # (T,) or None
    speaker: Optional[str] = None
    emotion: Optional[str] = None


@dataclass
class SkippedItem:
    utt_id: str
    reason: str


@dataclass
class Batch:
    features: Optional[Tensor]  # (B, T, D), zero-padded; None when every item of the batch was skipped
    lengths: Tensor  # (B,)
    intensities: Optional[List[np.ndarray]]
    intensity: Optional[Tensor]  # (B, T), zero-padded
    utt_ids: Optional[List[str]] = None
    speakers: Optional[List[str]] = None
    skipped: List[SkippedItem] = field(default_factory=list)


def header_frames(path, config: FbankConfig) -> Tuple[int, int]:
    """(feature frames, sample rate) of an audio file from its header alone (no decoding).

    At another sample rate than the front-end's the count is the one of the audio resampled
    to it (an estimate within a frame; bucketing only needs that).
    """
    info = audio_info(path)
    return _info_frames(info, config), info.rate


def _info_frames(info: AudioInfo, config: FbankConfig) -> int:
    return num_frames(info.samples_at(config.sample_rate), config.window_samples, config.hop_samples)


def _mismatch(cache, utt_id: str, curve: int, feats: int) -> UserFacingError:
    return UserFacingError(
        f"{cache.root}: intensity of {utt_id} has {curve} frames but its features have {feats}: "
        "the cache was built for another frame grid or audio; rebuild it with "
        "`s3prl-emoaware intensity`"
    )


class PretrainDataset(torch.utils.data.Dataset):
    """Utterances as paths and lengths; ``dataset[i]`` decodes one file and computes its features.

    Args:
        entries: the usable utterances (see :func:`build_dataset`).
        frontend: front-end settings.
        cache: an ``IntensityCache`` (or None): the curve of each item is read with it.
        max_frames: features (and curves) are cropped to this many frames.
    """

    def __init__(self, entries: Sequence[PretrainEntry], frontend: FbankConfig, cache=None, max_frames: int = 1500):
        self.entries, self.frontend_config, self.cache, self.max_frames = list(entries), frontend, cache, max_frames
        self._frontend: Optional[FbankFrontend] = None
        self.skipped: Dict[str, str] = {}  # utt_id -> why, of the files left out by the header scan
        self.what = "pre-training data"  # the corpus, in the lines about its bad files

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Union[PretrainItem, SkippedItem]:
        e = self.entries[index]
        c = self.frontend_config
        try:
            wav = read_audio(e.path, expected_rate=c.sample_rate, min_samples=c.window_samples)
        except AudioError as err:
            return SkippedItem(e.utt_id, str(err))
        if self._frontend is None:
            self._frontend = FbankFrontend(c)
        with torch.no_grad():
            feats = self._frontend.extract_one(torch.from_numpy(wav))
        curve = None
        if self.cache is not None:
            curve = self.cache.get(e.utt_id, wav)  # checked against these very samples (content hash)
            if curve.shape[0] != feats.shape[0]:
                raise _mismatch(self.cache, e.utt_id, curve.shape[0], feats.shape[0])
            curve = curve[: self.max_frames]
        return PretrainItem(e.utt_id, feats[: self.max_frames], curve, e.speaker, e.emotion)


def build_dataset(
    utterances: Sequence[Utterance],
    frontend: FbankConfig,
    cache=None,
    max_frames: int = 1500,
    min_frames: int = 20,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    what: str = "pre-training data",
) -> PretrainDataset:
    """The streaming dataset of a corpus, from headers only; files whose header cannot be read or
    that are shorter than ``min_frames`` are skipped and listed (more than ``max_bad_fraction`` of
    them is an error), and one line says what reading the rest does (resampled, downmixed, cropped
    to ``max_frames``). With ``cache``, every utterance must have a curve with its frame count
    (checked here, before any step, from the cache index)."""
    entries = []
    report = AudioReport(what, frontend.sample_rate, max_bad_fraction)
    cropped = 0
    for u in utterances:
        report.count()
        try:
            info = audio_info(u.path)
        except AudioError as err:
            report.skip(u.utt_id, str(err))
            continue
        frames = _info_frames(info, frontend)
        if frames < min_frames:
            report.skip(u.utt_id, f"{u.path}: too short, only {frames} frames (< {min_frames})")
            continue
        report.note(info)
        if cache is not None:
            item = cache.items.get(u.utt_id)
            if item is None:
                cache.get(u.utt_id)  # raises the cache's own error (missing, or why its extraction failed)
            if info.rate == frontend.sample_rate and item["num_frames"] != frames:
                raise _mismatch(cache, u.utt_id, item["num_frames"], frames)
        cropped += frames > max_frames
        entries.append(PretrainEntry(u.utt_id, str(u.path), min(frames, max_frames), u.speaker, u.emotion))
    if cropped:
        report.done[("cropped", f"to the first {max_frames} frames")] += cropped
    report.log()
    if not entries:
        raise UserFacingError(
            f"{what}: no usable utterance (all {len(report.skipped)} skipped; see the warnings above)"
        )
    report.check()
    dataset = PretrainDataset(entries, frontend, cache, max_frames)
    dataset.skipped, dataset.what = dict(report.skipped), what
    return dataset


def epoch_batches(
    items: Sequence[PretrainEntry],
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world: int = 1,
    max_frames_per_batch: int = 0,
) -> List[List[int]]:
    """Index lists of rank ``rank``'s batches in epoch ``epoch`` (see the module docstring).

    A batch holds at most ``batch_size`` utterances and at most ``max_frames_per_batch`` padded
    frames (its longest item times its size); an item longer than that bound is a batch alone.
    """
    if batch_size <= 0 and max_frames_per_batch <= 0:
        raise ValueError("training.batch_size or training.max_frames_per_batch must be > 0")
    order = sorted(range(len(items)), key=lambda i: (items[i].num_frames, items[i].utt_id))
    batches: List[List[int]] = []
    for i in order:  # ascending lengths: the item being added is the batch's longest
        full = batches and (
            (0 < batch_size <= len(batches[-1]))
            or 0 < max_frames_per_batch < (len(batches[-1]) + 1) * items[i].num_frames
        )
        if not batches or full:
            batches.append([])
        batches[-1].append(i)
    random.Random(seed * 100003 + epoch).shuffle(batches)
    usable = (len(batches) // world) * world or len(batches)  # equal counts per rank
    return batches[:usable][rank::world]


def collate(items: Sequence[Union[PretrainItem, SkippedItem]]) -> Batch:
    skipped = [it for it in items if isinstance(it, SkippedItem)]
    items = [it for it in items if not isinstance(it, SkippedItem)]
    if not items:
        return Batch(None, torch.zeros(0, dtype=torch.long), None, None, [], [], skipped)
    feats = torch.nn.utils.rnn.pad_sequence([it.features for it in items], batch_first=True)
    lengths = torch.tensor([it.features.shape[0] for it in items])
    ids, speakers = [it.utt_id for it in items], [it.speaker for it in items]
    if items[0].intensity is None:
        return Batch(feats, lengths, None, None, ids, speakers, skipped)
    curves = [it.intensity for it in items]
    padded = torch.zeros(feats.shape[:2])
    for i, c in enumerate(curves):
        padded[i, : len(c)] = torch.from_numpy(np.asarray(c, dtype=np.float32))
    return Batch(feats, lengths, curves, padded, ids, speakers, skipped)


def skipped_summary(skipped: Dict[str, str], limit: int = 5) -> str:
    shown = "; ".join(f"{u}: {r}" for u, r in sorted(skipped.items())[:limit])
    return f"{len(skipped)} files skipped ({shown}{'; ...' if len(skipped) > limit else ''})"
