"""NPC checkpoints between s3prl's format and ours.

s3prl's ``npc_local`` reads ``{"config": {"data": {"audio": {...}}, "model": {"paras": {...}}},
"model": state_dict}`` with torch's default ``weights_only=True``; our model uses the same
parameter names, so only the config is translated. Both formats hold plain types only.
"""

from __future__ import annotations

from typing import Dict, Tuple

from torch import Tensor

from ..features import FbankConfig
from ..models.npc import NPCConfig
from ..utils.errors import UserFacingError

__all__ = ["is_s3prl_npc", "from_s3prl_npc", "to_s3prl_npc"]


def is_s3prl_npc(ckpt) -> bool:
    return isinstance(ckpt, dict) and "model" in ckpt and "paras" in ckpt.get("config", {}).get("model", {})


def from_s3prl_npc(ckpt: dict) -> Tuple[NPCConfig, FbankConfig, Dict[str, Tensor]]:
    audio = dict(ckpt["config"]["data"]["audio"])
    paras = dict(ckpt["config"]["model"]["paras"])
    if audio.get("feat_type", "fbank") != "fbank":
        raise UserFacingError(
            f"s3prl NPC checkpoint with feat_type {audio.get('feat_type')!r}: only fbank is supported"
        )
    if paras.get("disable_cross_layer") or paras.get("dim_bottleneck"):
        raise UserFacingError("s3prl NPC checkpoints with disable_cross_layer or dim_bottleneck are not supported")
    fbank = FbankConfig(
        num_mel_bins=int(audio["feat_dim"]),
        frame_length_ms=float(audio.get("frame_length", 25)),
        frame_shift_ms=float(audio.get("frame_shift", 10)),
        window_type="hamming",
        delta_order=0,
        cmvn=bool(audio.get("cmvn", True)),
    )
    vq = paras.get("vq") or {}
    cfg = NPCConfig(
        input_dim=fbank.num_mel_bins,
        hidden_size=int(paras["hidden_size"]),
        n_blocks=int(paras["n_blocks"]),
        kernel_size=int(paras["kernel_size"]),
        mask_size=int(paras["mask_size"]),
        dropout=float(paras["dropout"]),
        residual=bool(paras["residual"]),
        batch_norm=bool(paras.get("batch_norm", True)),
        activation=paras.get("activate", "relu"),
        vq_codebook_sizes=list(vq.get("codebook_size", [])),
        vq_code_dims=list(vq.get("code_dim", [])),
        gumbel_temperature=float(vq.get("gumbel_temperature", 1.0)),
    )
    return cfg, fbank, dict(ckpt["model"])


def to_s3prl_npc(state: Dict[str, Tensor], cfg: NPCConfig, fbank: FbankConfig) -> dict:
    if fbank.window_type != "hamming" or fbank.delta_order:
        raise UserFacingError("s3prl's NPC front-end is a Hamming-window fbank without deltas; this model differs")
    paras = {
        "kernel_size": cfg.kernel_size,
        "mask_size": cfg.mask_size,
        "n_blocks": cfg.n_blocks,
        "hidden_size": cfg.hidden_size,
        "dropout": cfg.dropout,
        "residual": cfg.residual,
        "batch_norm": cfg.batch_norm,
        "activate": cfg.activation,
        "disable_cross_layer": False,
    }
    if cfg.vq_codebook_sizes:
        paras["vq"] = {
            "codebook_size": list(cfg.vq_codebook_sizes),
            "code_dim": list(cfg.vq_code_dims),
            "gumbel_temperature": cfg.gumbel_temperature,
        }
    audio = {
        "feat_type": "fbank",
        "feat_dim": fbank.num_mel_bins,
        "frame_length": fbank.frame_length_ms,
        "frame_shift": fbank.frame_shift_ms,
        "decode_wav": False,
        "cmvn": fbank.cmvn,
    }
    return {
        "config": {"data": {"audio": audio}, "model": {"paras": paras}},
        # the intensity head (the authors' pre-training extra) has no place in s3prl's NPC
        "model": {k: v for k, v in state.items() if not k.startswith("intensity_head.")},
    }
