"""``-d phoneme_recognition``: SUPERB phoneme recognition as an s3prl DownstreamExpert.

The stock ``ctc`` expert of the pip s3prl cannot import (its ``corpus`` modules are not
shipped), so this is our own: the SUPERB PR recipe (linear projector, s3prl's
``FrameLevel`` model, CTC, greedy decoding, PER), reading LibriSpeech-layout audio with a
lexicon and phone vocabulary named in the config.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List

import torch
from s3prl.downstream.model import FrameLevel
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from ...utils.atomic import atomic_write_json, atomic_write_text
from ...utils.audio import DEFAULT_AUDIO_MEMORY_GB
from ..scoring import DEV_BEST_FILE
from .dataset import BucketSampler, PhoneDataset, collate
from .text import PhoneVocabulary, greedy_ctc_decode, phone_error_rate, read_lexicon

__all__ = ["DownstreamExpert"]


class DownstreamExpert(nn.Module):
    """Args (from the runner): ``upstream_dim``, ``upstream_rate``, the config's ``downstream_expert``, ``expdir``."""

    def __init__(self, upstream_dim: int, upstream_rate: int, downstream_expert: dict, expdir: str, **kwargs):
        super().__init__()
        self.corpus = downstream_expert["corpus"]
        self.expdir = Path(expdir)
        self.vocab = PhoneVocabulary.from_file(downstream_expert["text"]["vocab_file"])
        lexicon_files = self.corpus["lexicon"]
        self.lexicon = read_lexicon([lexicon_files] if isinstance(lexicon_files, str) else lexicon_files, self.vocab)
        model_cfg = downstream_expert.get("model", {})
        self.projector = nn.Linear(upstream_dim, model_cfg.get("project_dim", 256))
        select = model_cfg.get("select", "FrameLevel")
        if select != "FrameLevel":
            raise ValueError(f"downstream_expert.model.select: only FrameLevel is supported, got {select!r}")
        self.model = FrameLevel(model_cfg.get("project_dim", 256), len(self.vocab), **model_cfg.get("FrameLevel", {}))
        head_init = model_cfg.get("head_init", "default")
        if head_init == "zero":
            # the output layer starts at 0 (uniform posteriors, every seed the same function): the first steps
            # fit it on a fixed random projection, a convex problem, before the projector moves
            nn.init.zeros_(self.model.linear.weight)
            nn.init.zeros_(self.model.linear.bias)
        elif head_init != "default":
            raise ValueError(f"downstream_expert.model.head_init: 'default' or 'zero', got {head_init!r}")
        self.objective = nn.CTCLoss(blank=0, zero_infinity=model_cfg.get("zero_infinity", True))
        self._datasets = {}
        self.register_buffer("best_score", torch.tensor(math.inf))

    def _dataset(self, split: str) -> PhoneDataset:
        if split not in self._datasets:
            self._datasets[split] = PhoneDataset(
                self.corpus["path"],
                self.corpus[split],
                self.lexicon,
                self.vocab,
                audio_memory_gb=self.corpus.get("audio_memory_gb", DEFAULT_AUDIO_MEMORY_GB),
            )
        return self._datasets[split]

    def get_dataloader(self, split: str, epoch: int = 0) -> DataLoader:
        dataset = self._dataset(split)
        train = split == "train"
        batch_size = self.corpus.get("batch_size", 16) if train else self.corpus.get("eval_batch_size", 1)
        sampler = BucketSampler(
            len(dataset), batch_size, shuffle=train and self.corpus.get("bucketing", True), epoch=epoch
        )
        return DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=self.corpus.get("num_workers", 0)
        )

    def forward(
        self,
        split: str,
        features: List[torch.Tensor],
        labels: List[torch.Tensor],
        filenames: List[str],
        records,
        **kwargs,
    ):
        device = features[0].device
        lengths = torch.tensor([len(f) for f in features], dtype=torch.long, device=device)
        x = self.projector(pad_sequence(features, batch_first=True))
        logits, _ = self.model(x, lengths)
        log_probs = logits.log_softmax(dim=-1)
        targets = pad_sequence(labels, batch_first=True).to(device)
        target_lengths = torch.tensor([len(l) for l in labels], dtype=torch.long, device=device)
        loss = self.objective(log_probs.transpose(0, 1), targets, lengths, target_lengths)
        records["loss"].append(loss.item())
        for utt, hyp, ref in zip(filenames, greedy_ctc_decode(log_probs.detach(), lengths), labels):
            records["utt"].append(utt)
            records["hyp"].append(self.vocab.decode(hyp))
            records["ref"].append(self.vocab.decode(ref.tolist()))
        return loss

    def log_records(self, split: str, records, logger, global_step: int, **kwargs):
        per = phone_error_rate(records["hyp"], records["ref"])
        loss = sum(records["loss"]) / max(1, len(records["loss"]))
        logger.add_scalar(f"phoneme_recognition/{split}-per", per, global_step=global_step)
        logger.add_scalar(f"phoneme_recognition/{split}-loss", loss, global_step=global_step)
        print(f"{split} per: {per:.4f}")
        save_names = []
        with open(self.expdir / "log.log", "a") as f:
            f.write(f"{split} at step {global_step}: per {per:.6f} loss {loss:.6f}\n")
            if split == "dev" and per < self.best_score.item():
                self.best_score.fill_(per)
                f.write(f"New best on {split} at step {global_step}: per {per:.6f}\n")
                save_names.append(f"{split}-best.ckpt")
                # what a search over runs (e.g. the learning rate) compares, never the test split
                atomic_write_json(
                    self.expdir / DEV_BEST_FILE,
                    {"metric": "per", "value": per, "step": global_step, "higher_is_better": False},
                )
        if split != "train":
            atomic_write_text(
                self.expdir / f"{split}-hyp.ark",
                "".join(f"{u} {' '.join(h)}\n" for u, h in zip(records["utt"], records["hyp"])),
            )
            atomic_write_text(
                self.expdir / f"{split}-ref.ark",
                "".join(f"{u} {' '.join(r)}\n" for u, r in zip(records["utt"], records["ref"])),
            )
            atomic_write_json(self.expdir / f"{split}_per.json", {"per": per, "step": global_step})
        return save_names
