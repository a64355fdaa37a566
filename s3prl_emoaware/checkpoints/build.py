"""Models built from checkpoint files: the encoders the upstreams and clustering use, StrengthNet,
and the untrained checkpoint of a recipe.

One builder per checkpoint kind (:data:`BUILDERS`); :data:`ENCODER_FAMILIES` names the kinds
each registered upstream accepts. A new encoder is one builder here and its family entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Type, TypeVar

import torch
from torch import nn

from ..config import from_dict, load_config
from ..features import FbankConfig
from ..models.ecapa import EcapaConfig, EcapaTdnn, load_speechbrain_state_dict
from ..models.mockingjay import MockingjayConfig, MockingjayEncoder
from ..models.npc import NPCConfig, NPCModel
from ..utils.errors import UserFacingError
from .s3prl_mockingjay import from_s3prl_checkpoint
from .s3prl_npc import from_s3prl_npc
from .store import (
    PRETRAINING_KINDS,
    CheckpointError,
    PathLike,
    encoder_state,
    kind_of,
    load_weights,
    read_checkpoint,
    require,
    save_checkpoint,
    training_state,
)

__all__ = ["ENCODER_FAMILIES", "BUILDERS", "load_encoder", "load_strengthnet", "save_untrained"]

T = TypeVar("T")

# upstream family -> the checkpoint kinds it can be built from
ENCODER_FAMILIES: Dict[str, Tuple[str, ...]] = {
    "mockingjay": ("mockingjay", "s3prl_mockingjay"),
    "npc": ("npc", "s3prl_npc"),
    "ecapa": ("ecapa_speaker", "ecapa_contrastive", "speechbrain_ecapa"),
}


def _config(cls: Type[T], data: Any, path: PathLike, kind: str, where: str) -> T:
    try:
        return from_dict(cls, data if isinstance(data, Mapping) else {"?": data}, where)
    except ValueError as err:  # ConfigError included: unknown keys, types, a dataclass's range check
        raise CheckpointError(
            f"{path}: expected checkpoint kind {kind}, found a config that does not build one ({err})"
        ) from None


def _frontend_matches(model_dim: int, fbank: FbankConfig, path: PathLike, kind: str) -> None:
    if model_dim != fbank.feature_dim:
        raise CheckpointError(
            f"{path}: expected checkpoint kind {kind} whose model.input_dim matches its front-end, "
            f"found input_dim {model_dim} and {fbank.feature_dim}-dim features"
        )


def _ours(ckpt, path, kind, config_cls) -> Tuple[Any, FbankConfig]:
    require(ckpt, ("model", "config.model", "config.frontend"), path, kind)
    cfg = _config(config_cls, ckpt["config"]["model"], path, kind, "config.model")
    fbank = _config(FbankConfig, ckpt["config"]["frontend"], path, kind, "config.frontend")
    _frontend_matches(cfg.input_dim, fbank, path, kind)
    return cfg, fbank


def _converted(convert: Callable, ckpt, path, kind):
    try:
        return convert(ckpt)
    except KeyError as err:
        raise CheckpointError(f"{path}: expected checkpoint kind {kind}, found one without key {err}") from None
    except UserFacingError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except (TypeError, AttributeError, ValueError) as err:
        raise CheckpointError(f"{path}: expected checkpoint kind {kind}, found malformed entries ({err})") from None


def _frame_encoder(config_cls, model_cls, convert: Callable, encoder_only: bool) -> Callable:
    """Builder for an encoder stored as ours (config + state) or in s3prl's format (``convert``);
    ``encoder_only``: the state dict holds heads too, the encoder's entries are ``encoder.*``."""

    def build(ckpt, path, kind, model_config=None):
        if kind in PRETRAINING_KINDS:
            cfg, fbank = _ours(ckpt, path, kind, config_cls)
            state = ckpt["model"]
        else:
            cfg, fbank, state = _converted(convert, ckpt, path, kind)
        model = model_cls(cfg)
        load_weights(model, encoder_state(state) if encoder_only else state, path, kind)
        return model, fbank

    return build


def _ecapa(ckpt, path, kind, model_config=None):
    if kind != "speechbrain_ecapa":
        cfg, fbank = _ours(ckpt, path, kind, EcapaConfig)
        encoder = EcapaTdnn(cfg)
        load_weights(encoder, encoder_state(ckpt["model"]), path, kind)
        return encoder, fbank
    weight = ckpt["blocks.0.conv.conv.weight"]
    cfg = load_config(EcapaConfig, model_config) if model_config else EcapaConfig(input_dim=weight.shape[1])
    fbank = FbankConfig(num_mel_bins=cfg.input_dim, cmvn=True, cmvn_std=False)  # SpeechBrain's sentence mean norm
    encoder = EcapaTdnn(cfg)
    try:
        load_speechbrain_state_dict(encoder, ckpt)
    except ValueError as err:
        raise CheckpointError(
            f"{path}: expected checkpoint kind speechbrain_ecapa matching the config, found {err}"
        ) from None
    return encoder, fbank


_mockingjay = _frame_encoder(MockingjayConfig, MockingjayEncoder, from_s3prl_checkpoint, encoder_only=True)
_npc = _frame_encoder(NPCConfig, NPCModel, from_s3prl_npc, encoder_only=False)

# checkpoint kind -> builder(ckpt, path, kind, model_config) -> (encoder, front-end config)
BUILDERS: Dict[str, Callable] = {
    "mockingjay": _mockingjay,
    "s3prl_mockingjay": _mockingjay,
    "npc": _npc,
    "s3prl_npc": _npc,
    "ecapa_speaker": _ecapa,
    "ecapa_contrastive": _ecapa,
    "speechbrain_ecapa": _ecapa,
}


def load_encoder(path: PathLike, family: str, model_config: Optional[str] = None) -> Tuple[nn.Module, FbankConfig]:
    """(encoder in eval mode, its front-end config) from any checkpoint kind of ``family``
    (:data:`ENCODER_FAMILIES`); ``model_config``: sizes for a SpeechBrain state dict."""
    ckpt = read_checkpoint(path, ENCODER_FAMILIES[family])
    kind = kind_of(ckpt)
    encoder, fbank = BUILDERS[kind](ckpt, Path(path), kind, model_config)
    return encoder.eval(), fbank


def load_strengthnet(path: PathLike):
    """A trained StrengthNet (eval mode) from ``EXPDIR/strengthnet.ckpt``."""
    from ..models.strengthnet import StrengthNet, StrengthNetConfig

    ckpt = read_checkpoint(
        path, ("strengthnet",), missing_hint="train one with `s3prl-emoaware train-strengthnet`, or use --source energy"
    )
    model = StrengthNet(_config(StrengthNetConfig, ckpt["config"], path, "strengthnet", "config"))
    load_weights(model, ckpt["model"], path, "strengthnet")
    return model.eval()


def save_untrained(recipe, items: Sequence, path: PathLike, device: str = "cpu") -> Path:
    """The checkpoint a :class:`~..pretraining.trainer.Trainer` of ``recipe`` would save before its
    first step (same seed, same weights, same contents), without building a trainer or a loader.
    ``items``: the corpus entries (speaker heads read their labels)."""
    from ..pretraining.tasks import task_from_recipe
    from ..pretraining.trainer import build_optimizer, checkpoint_config

    task = task_from_recipe(recipe)
    torch.manual_seed(recipe.training.seed)
    model = (task.build_model(items) if getattr(task, "needs_items", False) else task.build_model()).to(device)
    optimizer, scheduler = build_optimizer(model, recipe.training)
    return save_checkpoint(
        training_state(task.kind, model, optimizer, scheduler, 0, checkpoint_config(recipe, task)), path
    )
