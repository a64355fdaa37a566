"""Mockingjay checkpoints between s3prl's format and ours, in both directions.

s3prl's format (``pretrain/mockingjay`` and ``upstream/mockingjay/builder.py``): a dict with
``Transformer`` (state dict of its ``TransformerModel``: separate query/key/value, TF-style
names), ``SpecHead``, ``Upstream_Config`` = {transformer, task, audio} and a ``Config`` key
(the runner's config; the builder raises KeyError without it).

Ours (weights-only safe): {"format": "s3prl_emoaware", "kind": "mockingjay",
"model": state dict of :class:`MockingjayForPretraining`, "config": {"frontend": ...,
"model": ..., ...}, "step": ...}. The converters only rename and split/fuse the q/k/v
projections; the numbers are unchanged.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import Tensor

from ..config import from_dict, to_dict
from ..features import FbankConfig
from ..models.mockingjay import MockingjayConfig
from ..utils.errors import UserFacingError

__all__ = [
    "from_s3prl_checkpoint",
    "to_s3prl_checkpoint",
    "fbank_from_s3prl_audio",
    "fbank_to_s3prl_audio",
    "config_to_ckpt_dict",
    "config_from_ckpt_dict",
    "is_s3prl_mockingjay",
]

_PAIRS = [  # (ours, s3prl) inside each layer
    ("attn_out", "attention.output.dense"),
    ("attn_norm", "attention.output.LayerNorm"),
    ("ffn_in", "intermediate.dense"),
    ("ffn_out", "output.dense"),
    ("ffn_norm", "output.LayerNorm"),
]
_HEAD = [("head.dense", "dense"), ("head.norm", "LayerNorm"), ("head.output", "output")]


def is_s3prl_mockingjay(ckpt: dict) -> bool:
    return isinstance(ckpt, dict) and "Transformer" in ckpt and ("Upstream_Config" in ckpt or "Config" in ckpt)


def fbank_from_s3prl_audio(audio: dict) -> FbankConfig:
    kaldi = audio.get("kaldi")
    if not kaldi or kaldi.get("feat_type", "fbank") != "fbank":
        raise UserFacingError(
            "only s3prl Mockingjay checkpoints with Kaldi fbank input can be converted "
            f"(this one has audio config {sorted(audio)})"
        )
    fb = kaldi.get("fbank", {})
    if not fb.get("use_log_fbank", True):
        raise UserFacingError("s3prl Mockingjay checkpoint uses linear (not log) fbank; not supported")
    delta = audio.get("delta", {})
    return FbankConfig(
        num_mel_bins=int(fb.get("num_mel_bins", 23)),
        frame_length_ms=float(fb.get("frame_length", 25.0)),
        frame_shift_ms=float(fb.get("frame_shift", 10.0)),
        window_type=fb.get("window_type", "povey"),
        delta_order=int(delta.get("order", 0)),
        delta_win_length=int(delta.get("win_length", 5)),
        cmvn=bool(audio.get("cmvn", {}).get("use_cmvn", False)),
        dither=float(fb.get("dither", 0.0)),
    )


def fbank_to_s3prl_audio(fb: FbankConfig) -> dict:
    return {
        "kaldi": {
            "feat_type": "fbank",
            "fbank": {
                "num_mel_bins": fb.num_mel_bins,
                "frame_length": fb.frame_length_ms,
                "frame_shift": fb.frame_shift_ms,
                "use_log_fbank": True,
                "window_type": fb.window_type,
                "dither": fb.dither,
            },
        },
        "delta": {"order": fb.delta_order, "win_length": fb.delta_win_length},
        "cmvn": {"use_cmvn": fb.cmvn},
    }


def from_s3prl_checkpoint(ckpt: dict) -> Tuple[MockingjayConfig, FbankConfig, Dict[str, Tensor]]:
    """(model config, front-end config, our state dict) from an s3prl Mockingjay checkpoint dict."""
    config = ckpt["Config"] if "transformer" in ckpt.get("Config", {}) else ckpt["Upstream_Config"]
    t = config["transformer"]
    if t.get("pre_layer_norm") or t.get("share_layer"):
        raise UserFacingError("s3prl Mockingjay checkpoints with pre_layer_norm or share_layer are not supported")
    fbank = fbank_from_s3prl_audio(config["audio"])
    sd = {k.replace(".gamma", ".weight").replace(".beta", ".bias"): v for k, v in ckpt["Transformer"].items()}
    sd = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in sd.items()}
    in_dim = sd["input_representations.spec_transform.weight"].shape[1]
    downsample = int(config["task"].get("downsample_rate", 1)) if "task" in config else 1
    model_cfg = MockingjayConfig(
        input_dim=in_dim // downsample,
        hidden_size=int(t["hidden_size"]),
        num_layers=int(t["num_hidden_layers"]),
        num_heads=int(t["num_attention_heads"]),
        intermediate_size=int(t["intermediate_size"]),
        dropout=float(t.get("hidden_dropout_prob", 0.1)),
        attention_dropout=float(t.get("attention_probs_dropout_prob", 0.1)),
        layer_norm_eps=float(t.get("layer_norm_eps", 1e-12)),
        frame_stack=downsample,
    )
    if t.get("hidden_act", "gelu") != "gelu":
        raise UserFacingError(
            f"s3prl Mockingjay checkpoint uses hidden_act {t['hidden_act']!r}; only gelu is supported"
        )
    if model_cfg.input_dim != fbank.feature_dim:
        raise UserFacingError(
            f"s3prl Mockingjay checkpoint expects {model_cfg.input_dim}-dim frames but its audio "
            f"config gives {fbank.feature_dim}"
        )
    ours: Dict[str, Tensor] = {
        "encoder.input_projection.weight": sd["input_representations.spec_transform.weight"],
        "encoder.input_projection.bias": sd["input_representations.spec_transform.bias"],
        "encoder.input_norm.weight": sd["input_representations.LayerNorm.weight"],
        "encoder.input_norm.bias": sd["input_representations.LayerNorm.bias"],
    }
    for i in range(model_cfg.num_layers):
        p = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            ours[f"encoder.layers.{i}.qkv.{kind}"] = torch.cat(
                [sd[f"{p}attention.self.{n}.{kind}"] for n in ("query", "key", "value")], dim=0
            )
            for mine, theirs in _PAIRS:
                ours[f"encoder.layers.{i}.{mine}.{kind}"] = sd[f"{p}{theirs}.{kind}"]
    head = ckpt.get("SpecHead")
    if head and head.get("output.weight") is not None and head["output.weight"].shape[0] == in_dim:
        for mine, theirs in _HEAD:
            for kind in ("weight", "bias"):
                ours[f"{mine}.{kind}"] = head[f"{theirs}.{kind}"]
    return model_cfg, fbank, ours


def to_s3prl_checkpoint(
    model_state: Dict[str, Tensor], model_cfg: MockingjayConfig, fbank: FbankConfig, sequence_length: int = 1500
) -> dict:
    """A checkpoint dict that s3prl's ``mockingjay_local -k`` loads (plain types and tensors only)."""
    if model_cfg.intensity_input:
        raise UserFacingError(
            "a model pre-trained with intensity_input needs intensities at inference; "
            "s3prl's Mockingjay cannot give them, so it cannot be exported"
        )
    sd: Dict[str, Tensor] = {
        "input_representations.spec_transform.weight": model_state["encoder.input_projection.weight"],
        "input_representations.spec_transform.bias": model_state["encoder.input_projection.bias"],
        "input_representations.LayerNorm.weight": model_state["encoder.input_norm.weight"],
        "input_representations.LayerNorm.bias": model_state["encoder.input_norm.bias"],
    }
    h = model_cfg.hidden_size
    for i in range(model_cfg.num_layers):
        p = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = model_state[f"encoder.layers.{i}.qkv.{kind}"].split(h, dim=0)
            for name, value in (("query", q), ("key", k), ("value", v)):
                sd[f"{p}attention.self.{name}.{kind}"] = value.clone()
            for mine, theirs in _PAIRS:
                sd[f"{p}{theirs}.{kind}"] = model_state[f"encoder.layers.{i}.{mine}.{kind}"]
    head = {
        f"{theirs}.{kind}": model_state[f"{mine}.{kind}"]
        for mine, theirs in _HEAD
        for kind in ("weight", "bias")
        if f"{mine}.{kind}" in model_state
    }
    transformer = {
        "hidden_size": model_cfg.hidden_size,
        "num_hidden_layers": model_cfg.num_layers,
        "num_attention_heads": model_cfg.num_heads,
        "hidden_act": "gelu",
        "intermediate_size": model_cfg.intermediate_size,
        "hidden_dropout_prob": model_cfg.dropout,
        "attention_probs_dropout_prob": model_cfg.attention_dropout,
        "initializer_range": 0.02,
        "layer_norm_eps": model_cfg.layer_norm_eps,
        "share_layer": False,
        "pre_layer_norm": False,
    }
    return {
        "Transformer": sd,
        "SpecHead": head,
        "Upstream_Config": {
            "transformer": transformer,
            "task": {"sequence_length": sequence_length, "downsample_rate": model_cfg.frame_stack},
            "audio": fbank_to_s3prl_audio(fbank),
        },
        "Config": {"exported_by": "s3prl-emoaware"},
    }


def config_to_ckpt_dict(model_cfg: MockingjayConfig, fbank: FbankConfig) -> dict:
    return {"model": to_dict(model_cfg), "frontend": to_dict(fbank)}


def config_from_ckpt_dict(config: dict) -> Tuple[MockingjayConfig, FbankConfig]:
    return from_dict(MockingjayConfig, config["model"]), from_dict(FbankConfig, config["frontend"])
