"""The generic pre-training loop: AdamW + warm-up, accumulation, clipping, atomic checkpoints,
exact resume, TensorBoard, tqdm, DistributedDataParallel under ``torchrun``.

Data streams: a DataLoader (``training.num_workers`` worker processes) computes the features of
each micro-batch while the model trains on the previous one; files that fail to decode are
skipped, warned about once and summed up at every epoch's end; at every checkpoint they count,
with the files the index left out, against ``training.max_bad_fraction`` (under DDP summed over
the ranks first, so every rank stops at the same step with the same count).

Determinism without stored RNG state: the micro-batch of every step follows from the step
number (:func:`.data.epoch_batches`), the masking generator is seeded with
``(seed, step, micro-batch, rank)`` and torch's generator (dropout) with a function of the
same, so ``--resume`` from a checkpoint continues exactly the loss sequence an
uninterrupted run with the same seed produces (on CPU).

Checkpoints hold tensors and plain dicts only (:func:`s3prl_emoaware.checkpoints.training_state`,
read back by :func:`~s3prl_emoaware.checkpoints.read_checkpoint` with ``weights_only=True``):
``{"format": "s3prl_emoaware", "kind", "model", "optimizer", "scheduler", "step", "config"}``
written atomically to ``EXPDIR/states-<step>.ckpt`` and ``EXPDIR/last.ckpt``.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..checkpoints import load_weights, read_checkpoint, require, save_checkpoint, training_state
from ..config import from_dict, to_dict
from ..features import FbankConfig
from ..masking.spans import MaskingConfig
from ..utils.atomic import ensure_writable_dir
from ..utils.audio import AudioReport
from ..utils.errors import UserFacingError
from ..utils.signals import Interrupted, graceful_stop, ignore_interrupts, peer_failure
from ..utils.tensorboard import summary_writer
from .data import PretrainDataset, collate, epoch_batches, skipped_summary

logger = logging.getLogger(__name__)

__all__ = ["TrainingConfig", "PretrainRecipe", "Trainer", "distributed_context", "build_optimizer", "checkpoint_config"]


@dataclass
class TrainingConfig:
    """Args:
    total_steps: optimizer steps.
    batch_size: utterances per micro-batch at most (per process under DDP; 0 = no count bound).
    max_frames_per_batch: padded frames per micro-batch at most (duration bucketing: the
        length-sorted utterances are packed up to this bound; 0 = off, fixed ``batch_size``).
    num_workers: DataLoader processes computing features (0 = in the training process).
    accumulate: micro-batches per optimizer step.
    lr: peak AdamW learning rate.
    warmup_proportion: share of steps with linear warm-up (then linear decay to 0).
    weight_decay: AdamW weight decay.
    clip: gradient-norm clipping.
    log_every: steps between TensorBoard/progress updates.
    save_every: steps between checkpoints (plus one at the end).
    keep: how many ``states-*.ckpt`` to keep (``last.ckpt`` always).
    max_frames: utterances are truncated to this many frames (s3prl: sequence_length 1500).
    max_bad_fraction: share of the corpus' files that may be unusable (skipped and listed)
        before the index is refused as the wrong folder.
    seed: data order, masks, dropout.
    dist_timeout_s: under ``torchrun``, seconds a collective waits for the other ranks before
        this one stops with a message (a rank that died or hangs).
    """

    total_steps: int = 1000
    batch_size: int = 8
    max_frames_per_batch: int = 0
    num_workers: int = 1
    accumulate: int = 1
    lr: float = 2.0e-4
    warmup_proportion: float = 0.07
    weight_decay: float = 0.01
    clip: float = 1.0
    log_every: int = 10
    save_every: int = 500
    keep: int = 2
    max_frames: int = 1500
    max_bad_fraction: float = 0.1
    seed: int = 0
    dist_timeout_s: float = 600.0

    def __post_init__(self):
        from ..config import ConfigError, check_fraction, check_non_negative, check_positive

        check_positive(self, "total_steps", "accumulate", "lr", "clip", "log_every", "save_every", "max_frames")
        check_non_negative(self, "batch_size", "max_frames_per_batch", "num_workers", "weight_decay", "keep")
        check_fraction(self, "warmup_proportion", high_open=True)
        check_fraction(self, "max_bad_fraction")
        if self.batch_size == 0 and self.max_frames_per_batch == 0:
            raise ConfigError("batch_size and max_frames_per_batch are both 0: a micro-batch needs one bound")


@dataclass
class PretrainRecipe:
    """A pre-training YAML (``upstream_configs/ems_*.yaml``): fields of these sections.

    ``model`` and ``objective`` are the fields of the kind's dataclasses
    (:func:`.tasks.recipe_sections`: e.g. ``MockingjayConfig``, ``NPCConfig`` + ``NPCObjective``),
    checked when the recipe is made (an unknown key or a bad value is one ``ConfigError`` line);
    they stay plain mappings because the task completes them (``input_dim`` from the front-end)
    and checkpoints store them as given. :attr:`model_config` and :attr:`objective_config` are
    the typed views.
    """

    kind: str = "mockingjay"
    frontend: FbankConfig = field(default_factory=FbankConfig)
    model: Dict = field(default_factory=dict)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    objective: Dict = field(default_factory=dict)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self):  # both sections are checked when the recipe is made
        _ = self.model_config, self.objective_config

    @property
    def model_config(self):
        """``model`` as its dataclass (``input_dim`` defaults to the front-end's feature dimension)."""
        from .tasks import recipe_sections

        return from_dict(
            recipe_sections(self.kind)[0], {"input_dim": self.frontend.feature_dim, **(self.model or {})}, "model"
        )

    @property
    def objective_config(self):
        """``objective`` as its dataclass (None for kinds without one, whose ``objective`` must be empty)."""
        from .tasks import recipe_sections

        cls = recipe_sections(self.kind)[1]
        if cls is None:
            if self.objective:
                raise ValueError(
                    f"objective: {self.kind} pre-training takes no objective settings "
                    f"(got {', '.join(sorted(self.objective))})"
                )
            return None
        return from_dict(cls, self.objective or {}, "objective")


def distributed_context() -> Tuple[int, int, Optional[int]]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, None) without it."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, None


def build_optimizer(model: nn.Module, cfg: TrainingConfig):
    """AdamW and its warm-up + linear-decay schedule, as every pre-training uses them."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.total_steps, cfg.warmup_proportion))


def checkpoint_config(recipe: PretrainRecipe, task) -> dict:
    """The ``config`` entry of a pre-training checkpoint (plain dicts: what loaders rebuild the model from)."""
    return {
        "frontend": to_dict(recipe.frontend),
        "model": task.model_config(),
        "masking": to_dict(recipe.masking),
        "objective": dict(recipe.objective),
        "training": to_dict(recipe.training),
        "kind": recipe.kind,
    }


def _config_difference(theirs: dict, ours: dict) -> str:
    keys = sorted(set(theirs) | set(ours))
    diff = [f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in keys if theirs.get(k) != ours.get(k)]
    return "; ".join(diff[:4]) or "none"


def _lr_lambda(total: int, warmup_proportion: float):
    warmup = max(1, int(total * warmup_proportion))

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return fn


class Trainer:
    """Runs a task's objective over items; see the module docstring for the guarantees."""

    def __init__(self, task, dataset: PretrainDataset, recipe: PretrainRecipe, out, device: str = "cpu"):
        self.task, self.dataset, self.recipe = task, dataset, recipe
        self.items = dataset.entries  # paths, lengths and labels: what samplers and speaker heads read
        self.cfg = recipe.training
        if self.cfg.num_workers < 0:
            raise UserFacingError(f"training.num_workers must be >= 0, got {self.cfg.num_workers}")
        self.skipped: Dict[str, str] = {}
        self.rank, self.world, self.local_rank = distributed_context()
        self.out = ensure_writable_dir(out) if self.rank == 0 else Path(out)
        if device.startswith("cuda") and self.local_rank is not None:
            device = f"cuda:{self.local_rank}"
            # nccl collectives given no tensor (the barrier at every save) run on the current device:
            # without this every rank would take cuda:0
            torch.cuda.set_device(device)
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            from datetime import timedelta

            torch.distributed.init_process_group(backend, timeout=timedelta(seconds=self.cfg.dist_timeout_s))
        self.device = torch.device(device)
        torch.manual_seed(self.cfg.seed)
        self.model = task.build_model(self.items) if getattr(task, "needs_items", False) else task.build_model()
        self.model = self.model.to(self.device)
        self.optimizer, self.scheduler = build_optimizer(self.model, self.cfg)
        self.step = 0
        self._cached_epoch: Tuple[int, List[List[int]]] = (-1, [])
        self.ddp = (
            nn.parallel.DistributedDataParallel(
                self.model, device_ids=None if self.device.type == "cpu" else [self.device.index]
            )
            if self.world > 1
            else None
        )

    # --- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict:
        return training_state(
            self.task.kind,
            self.model,
            self.optimizer,
            self.scheduler,
            self.step,
            checkpoint_config(self.recipe, self.task),
        )

    def save(self) -> Path:
        path = self.out / f"states-{self.step}.ckpt"
        state = self.state()
        save_checkpoint(state, path)
        save_checkpoint(state, self.out / "last.ckpt")
        old = sorted(self.out.glob("states-*.ckpt"), key=lambda p: int(p.stem.split("-")[1]))
        for stale in old[: -self.cfg.keep]:
            stale.unlink()
        return path

    def resume(self, path) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "last.ckpt"
        ckpt = read_checkpoint(path, (self.task.kind,))
        require(ckpt, ("model", "optimizer", "scheduler", "step", "config.model"), path, self.task.kind)
        if ckpt["config"]["model"] != self.task.model_config():
            raise UserFacingError(
                f"{path}: incompatible checkpoint (its model config differs from this run's: "
                f"{_config_difference(ckpt['config']['model'], self.task.model_config())})"
            )
        load_weights(self.model, ckpt["model"], path, self.task.kind)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.step = int(ckpt["step"])
        logger.info("resumed from %s at step %d", path, self.step)

    # --- training -------------------------------------------------------------------------------
    def _epoch(self, epoch: int) -> List[List[int]]:
        # a task may define its own batch structure (e.g. speakers x clusters x utterances)
        sampler = getattr(self.task, "epoch_batches", None)
        if sampler is not None:
            return sampler(self.items, self.cfg.batch_size, self.cfg.seed, epoch, self.rank, self.world)
        return epoch_batches(
            self.items, self.cfg.batch_size, self.cfg.seed, epoch, self.rank, self.world, self.cfg.max_frames_per_batch
        )

    def _micro_batch(self, index: int) -> List[int]:
        # every epoch has the same number of batches; the batch list of the current epoch is
        # built once and reused for all its steps (it is a pure function of the epoch)
        if self._cached_epoch[0] < 0:
            self._cached_epoch = (0, self._epoch(0))
        epoch, i = divmod(index, len(self._cached_epoch[1]))
        if self._cached_epoch[0] != epoch:
            self._cached_epoch = (epoch, self._epoch(epoch))
        return self._cached_epoch[1][i]

    def _loader(self, start: int, end: int) -> Iterator:
        """Collated micro-batches ``start``..``end - 1`` (micro-batch indices), features computed in workers."""
        workers = self.cfg.num_workers
        return iter(
            torch.utils.data.DataLoader(
                self.dataset,
                batch_sampler=_Indices(self, start, end),
                collate_fn=collate,
                num_workers=workers,
                worker_init_fn=_one_thread if workers else None,
                prefetch_factor=2 if workers else None,
            )
        )

    def _note_skipped(self, batch) -> None:
        for item in batch.skipped:
            if item.utt_id not in self.skipped:
                self.skipped[item.utt_id] = item.reason
                logger.warning("rank %d: skipped %s", self.rank, item.reason)

    def _check_bad_files(self) -> None:
        """Raise :class:`~s3prl_emoaware.utils.audio.TooManyBadFilesError` when the files skipped while
        decoding, with those left out of the index, are more than ``training.max_bad_fraction`` of
        the corpus. Every rank calls this at the same step (a checkpoint); under DDP a flag per item
        is all-reduced first (a file two ranks met counts once), so all ranks raise together and
        none waits for one that stopped."""
        header = getattr(self.dataset, "skipped", None) or {}
        skipped = {**header, **self.skipped}
        if self.world > 1:
            position = {e.utt_id: i for i, e in enumerate(self.items)}
            flags = torch.zeros(len(self.items), dtype=torch.int32)
            for utt_id in self.skipped:
                flags[position[utt_id]] = 1
            flags = flags.to(self.device)
            torch.distributed.all_reduce(flags)
            for i in torch.nonzero(flags.cpu()).flatten().tolist():
                e = self.items[i]
                skipped.setdefault(e.utt_id, f"{e.path}: failed to decode (on another rank, see its log)")
        report = AudioReport(getattr(self.dataset, "what", "pre-training data"), None, self.cfg.max_bad_fraction)
        report.count(len(self.items) + len(header))
        report.skipped.update(skipped)
        report.check()

    def train(self, stop_at: Optional[int] = None) -> List[Tuple[int, float]]:
        """Train up to ``total_steps`` (or ``stop_at``); return (step, loss) for every step run.

        SIGINT/SIGTERM: the step under way finishes, a checkpoint is saved, :class:`Interrupted`
        is raised (all ranks stop after the same step); a lost rank is one error line."""
        with (
            graceful_stop() as stop,
            peer_failure(self.rank, self.world, lambda: f"step {self.step + 1}", str(self.out / "last.ckpt")),
        ):
            try:
                return self._train(stop_at, stop)
            finally:  # the bar is closed on an error too: its message then starts on a line of its own
                if getattr(self, "_bar", None) is not None:
                    self._bar.close()

    def _train(self, stop_at, stop) -> List[Tuple[int, float]]:
        from tqdm import tqdm

        end = min(self.cfg.total_steps, stop_at or self.cfg.total_steps)
        # resumed: the interrupted run's events from the next step on are hidden by this run's
        writer = summary_writer(self.out, purge_step=self.step + 1 if self.step else None) if self.rank == 0 else None
        bar = self._bar = tqdm(total=end, initial=self.step, desc=f"pretrain {self.task.kind}", disable=self.rank != 0)
        module = self.ddp or self.model
        history: List[Tuple[int, float]] = []
        self.model.train()
        loader = self._loader(self.step * self.cfg.accumulate, end * self.cfg.accumulate)
        per_epoch = len(self._epoch(0))
        while self.step < end:
            total = 0.0
            logs: Dict[str, float] = {}
            for micro in range(self.cfg.accumulate):
                index = self.step * self.cfg.accumulate + micro
                batch = next(loader)
                self._note_skipped(batch)
                if (index + 1) % per_epoch == 0 and self.skipped:
                    logger.warning(
                        "rank %d, end of epoch %d: %s", self.rank, index // per_epoch, skipped_summary(self.skipped)
                    )
                if batch.features is None:
                    if self.world > 1:  # the other ranks would wait for this one's gradients forever
                        raise UserFacingError(
                            f"rank {self.rank}: every file of micro-batch {index} failed to decode "
                            f"({skipped_summary(self.skipped)}); remove or repair them"
                        )
                    logger.warning("step %d: every utterance of micro-batch %d was skipped", self.step + 1, index)
                    continue
                torch.manual_seed(self.cfg.seed * 1_000_003 + index * 131 + self.rank)
                rng = np.random.default_rng([self.cfg.seed, index, self.rank])
                batch.features = batch.features.to(self.device)
                self.task.step = self.step  # the optimizer step being computed (loss schedules read it)
                loss, logs = self.task.loss(module, batch, rng)
                (loss / self.cfg.accumulate).backward()
                total += loss.item() / self.cfg.accumulate
            if self.world > 1:
                t = torch.tensor([total, float(stop.signum or 0)], device=self.device)
                torch.distributed.all_reduce(t)  # the signal rides along: every rank stops after this step
                total = t[0].item() / self.world
                signum = int(stop.signum or signal.SIGTERM) if t[1].item() > 0 else 0
            else:
                signum = stop.signum
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
            if torch.isfinite(grad_norm):
                self.optimizer.step()
            else:
                logger.warning("step %d: non-finite gradient norm, update skipped", self.step + 1)
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.step += 1
            history.append((self.step, total))
            bar.update(1)
            if writer is not None and self.step % self.cfg.log_every == 0:
                writer.add_scalar(f"pretrain/{self.task.kind}-loss", total, self.step)
                writer.add_scalar("pretrain/lr", self.scheduler.get_last_lr()[0], self.step)
                for k, v in logs.items():
                    writer.add_scalar(f"pretrain/{k}", v, self.step)
                bar.set_postfix(loss=f"{total:.4f}")
            if self.step % self.cfg.save_every == 0 or self.step == end or signum:
                if self.rank == 0:
                    self.save()
                if self.world > 1:
                    torch.distributed.barrier()
                self._check_bad_files()
            if signum and self.step < end:
                raise Interrupted(signum, f"step {self.step}", str(self.out / "last.ckpt"))
        bar.close()
        if self.skipped:
            logger.warning("rank %d, end of training: %s", self.rank, skipped_summary(self.skipped))
        if getattr(self.dataset, "skipped", None):
            logger.warning(
                "rank %d, end of training: %d more left out of the index (header unusable or too short): %s",
                self.rank,
                len(self.dataset.skipped),
                skipped_summary(self.dataset.skipped),
            )
        if writer is not None:
            writer.close()
        return history


def _one_thread(_worker_id: int) -> None:
    ignore_interrupts()  # Ctrl-C reaches the workers too; the training process decides when to stop
    torch.set_num_threads(1)  # each worker computes one item at a time; the cores go to the workers and the model


class _Indices:
    """Batch sampler of a trainer: the index lists of micro-batches ``start``..``end - 1``, across epochs."""

    def __init__(self, trainer: "Trainer", start: int, end: int):
        self.trainer, self.start, self.end = trainer, start, end

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):
        for index in range(self.start, self.end):
            yield self.trainer._micro_batch(index)
