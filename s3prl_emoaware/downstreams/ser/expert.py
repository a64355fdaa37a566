"""``-d emotion_cremad`` / ``emotion_esd`` / ``emotion_ravdess``: SER on those corpora's public layouts.

Speaker-independent train/dev/test splits (seeded), an optional ``label_fraction`` of the
training labels (class-stratified: the few-label setting), SUPERB's ER model (projector +
s3prl's ``UtteranceLevel`` with mean pooling), cross-entropy, and both SER metrics: UA
(unweighted accuracy, mean per-class recall) and WA (weighted accuracy). ``dev-best.ckpt``
follows dev UA; ``{split}_metrics.json`` holds UA/WA (the leaderboard reads ``test_metrics.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import torch
from s3prl.downstream.model import UtteranceLevel
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from ...corpora.reader import read_corpus
from ...utils.atomic import atomic_write_json, atomic_write_text
from ...utils.audio import DEFAULT_AUDIO_MEMORY_GB, DEFAULT_MAX_BAD_FRACTION, AudioMemo, screen_audio
from ...utils.errors import UserFacingError
from .splits import label_subset, speaker_split, unweighted_accuracy, weighted_accuracy

__all__ = ["DownstreamExpert"]

_MIN_SAMPLES = 400  # one 25 ms analysis window at 16 kHz


class _Utterances(Dataset):
    def __init__(self, items, classes, read: Optional[AudioMemo] = None):
        self.items, self.index = items, {c: i for i, c in enumerate(classes)}
        # the expert passes one memo per split; alone, a dataset reads every item from disk
        self.read = read or AudioMemo(0, expected_rate=16000, min_samples=_MIN_SAMPLES)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        u = self.items[i]
        return self.read(u.path), self.index[u.emotion], u.utt_id


def _collate(batch):
    wavs, labels, ids = zip(*batch)
    return list(wavs), list(labels), list(ids)


class DownstreamExpert(nn.Module):
    def __init__(self, upstream_dim: int, downstream_expert: dict, expdir: str, **kwargs):
        super().__init__()
        self.datarc, modelrc = downstream_expert["datarc"], downstream_expert["modelrc"]
        self.expdir = Path(expdir)
        root = Path(str(self.datarc["root"]))
        if not root.is_dir():
            raise UserFacingError(f"{root}: corpus root does not exist (downstream_expert.datarc.root)")
        self.classes = list(self.datarc["classes"])
        # reader_options: the layout's own, e.g. {speakers: all} for ESD; audio at other rates is resampled to 16 kHz
        options = dict(self.datarc.get("reader_options") or {})
        utts = [u for u in read_corpus(root, self.datarc.get("layout", "auto"), **options) if u.emotion in self.classes]
        if not utts:
            raise UserFacingError(f"{root}: no utterance with a label in {self.classes}")
        # unusable or too-short files are skipped and listed (max_bad_fraction of them at most), from headers
        utts, _ = screen_audio(
            utts,
            lambda u: u.path,
            f"{root} (SER)",
            16000,
            _MIN_SAMPLES,
            float(self.datarc.get("max_bad_fraction", DEFAULT_MAX_BAD_FRACTION)),
            name_of=lambda u: u.utt_id,
        )
        seed = int(self.datarc.get("seed", 0))
        train_spk, dev_spk, test_spk = speaker_split(
            [u.speaker for u in utts], self.datarc.get("test_fraction", 0.2), self.datarc.get("dev_fraction", 0.2), seed
        )
        train = [u for u in utts if u.speaker in train_spk]
        keep = label_subset([u.emotion for u in train], float(self.datarc.get("label_fraction", 1.0)), seed)
        self.splits = {
            "train": [train[i] for i in keep],
            "dev": [u for u in utts if u.speaker in dev_spk],
            "test": [u for u in utts if u.speaker in test_spk],
        }
        self.projector = nn.Linear(upstream_dim, modelrc["projector_dim"])
        self.model = UtteranceLevel(
            input_dim=modelrc["projector_dim"], output_dim=len(self.classes), **modelrc.get("UtteranceLevel", {})
        )
        self.objective = nn.CrossEntropyLoss()
        self.register_buffer("best_score", torch.zeros(1))
        # one per split, kept across the runner's per-epoch get_dataloader calls
        self._audio = {}

    def get_dataloader(self, split: str, epoch: int = 0):
        train = split == "train"
        if split not in self._audio:
            memory = self.datarc.get("audio_memory_gb", DEFAULT_AUDIO_MEMORY_GB)
            self._audio[split] = AudioMemo(memory, expected_rate=16000, min_samples=_MIN_SAMPLES)
        return DataLoader(
            _Utterances(self.splits[split], self.classes, self._audio[split]),
            batch_size=self.datarc["train_batch_size" if train else "eval_batch_size"],
            shuffle=train,
            num_workers=self.datarc.get("num_workers", 0),
            collate_fn=_collate,
            generator=torch.Generator().manual_seed(epoch) if train else None,
        )

    def forward(self, split: str, features: List[torch.Tensor], labels, filenames, records, **kwargs):
        device = features[0].device
        lengths = torch.IntTensor([len(f) for f in features]).to(device)
        logits, _ = self.model(self.projector(pad_sequence(features, batch_first=True)), lengths)
        labels = torch.LongTensor(labels).to(device)
        loss = self.objective(logits, labels)
        records["loss"].append(loss.item())
        records["pred"] += logits.argmax(-1).tolist()
        records["truth"] += labels.tolist()
        records["filename"] += list(filenames)
        return loss

    def log_records(self, split: str, records, logger, global_step: int, **kwargs):
        ua = unweighted_accuracy(records["pred"], records["truth"])
        wa = weighted_accuracy(records["pred"], records["truth"])
        for name, value in (("ua", ua), ("wa", wa), ("loss", sum(records["loss"]) / len(records["loss"]))):
            logger.add_scalar(f"{self.datarc.get('layout', 'ser')}/{split}-{name}", value, global_step=global_step)
        print(f"{split} ua: {ua:.4f} wa: {wa:.4f}")
        saves = []
        if split == "dev" and ua > self.best_score.item():
            self.best_score.fill_(ua)
            saves.append("dev-best.ckpt")
        if split != "train":
            atomic_write_json(self.expdir / f"{split}_metrics.json", {"ua": ua, "wa": wa})
            atomic_write_text(
                self.expdir / f"{split}_predict.txt",
                "".join(
                    f"{f} {self.classes[p]} {self.classes[t]}\n"
                    for f, p, t in zip(records["filename"], records["pred"], records["truth"])
                ),
            )
        return saves
