"""Checkpoint files: every kind the package reads or writes, loaded safely in one place.

:mod:`.store` reads every checkpoint (the only ``torch.load`` of a checkpoint in the package, with
``weights_only=True``; the hidden-state cache reads its own entries), identifies and validates
files and writes them atomically; :mod:`.build` makes models from them;
:mod:`.s3prl_mockingjay` and :mod:`.s3prl_npc` convert s3prl's formats both ways. Nothing here
imports s3prl, so the core (clustering, pre-training, intensity) uses it freely.
"""

from .build import ENCODER_FAMILIES, load_encoder, load_strengthnet, save_untrained
from .store import (
    FORMAT,
    PRETRAINING_KINDS,
    CheckpointError,
    encoder_state,
    kind_of,
    load_weights,
    read_checkpoint,
    require,
    save_checkpoint,
    training_state,
)

__all__ = [
    "CheckpointError",
    "FORMAT",
    "PRETRAINING_KINDS",
    "ENCODER_FAMILIES",
    "kind_of",
    "read_checkpoint",
    "require",
    "encoder_state",
    "load_weights",
    "training_state",
    "save_checkpoint",
    "load_encoder",
    "load_strengthnet",
    "save_untrained",
]
