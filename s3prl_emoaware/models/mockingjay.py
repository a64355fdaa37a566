"""Mockingjay (Liu et al., ICASSP 2020): a post-LN Transformer encoder over acoustic frames.

Input frames (optionally ``frame_stack`` consecutive ones concatenated) are projected to
the hidden size, sinusoidal positions are added, then LayerNorm and dropout; each layer is
self-attention + residual + LayerNorm, then GELU feed-forward + residual + LayerNorm.
Attention runs through ``F.scaled_dot_product_attention`` (fused kernels on CPU and CUDA)
with a key-padding mask. The prediction head (dense -> GELU -> LayerNorm -> linear) is only
used in pre-training and is dropped by the upstream.

Numerically this is s3prl's ``TransformerModel`` (same operations, same order), so weights
convert both ways (:mod:`s3prl_emoaware.checkpoints.s3prl_mockingjay`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MockingjayConfig",
    "MockingjayEncoder",
    "PredictionHead",
    "MockingjayForPretraining",
    "mockingjay_model",
    "mockingjay_base",
    "lengths_to_mask",
    "sinusoid_positions",
]


@dataclass
class MockingjayConfig:
    """Args:
    input_dim: feature dimension of one input frame (80 fbank x 3 with deltas = 240).
    hidden_size: Transformer width.
    num_layers: encoder layers.
    num_heads: attention heads (must divide ``hidden_size``).
    intermediate_size: feed-forward width.
    dropout: dropout on embeddings and sub-layer outputs.
    attention_dropout: dropout on attention weights.
    layer_norm_eps: LayerNorm epsilon (1e-12 as s3prl/BERT).
    frame_stack: consecutive frames concatenated per position (1 = none); multiplies the
        upstream's downsample rate.
    intensity_input: EMS code-only extra: add the frame intensity to every input dimension.
    intensity_head: EMS code-only extra: a head that reconstructs the intensity (L1).
    """

    input_dim: int = 240
    hidden_size: int = 768
    num_layers: int = 3
    num_heads: int = 12
    intermediate_size: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    frame_stack: int = 1
    intensity_input: bool = False
    intensity_head: bool = False

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.frame_stack < 1:
            raise ValueError("frame_stack must be >= 1")


def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B,) lengths -> (B, max_len) boolean, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def sinusoid_positions(length: int, dim: int, device=None) -> Tensor:
    """(length, dim): sin on even dimensions, cos on odd ones, wavelengths up to 10000 * 2 pi."""
    position = torch.arange(length, dtype=torch.float64, device=device)[:, None]
    rates = torch.pow(10000.0, -(2 * (torch.arange(dim, device=device) // 2)).double() / dim)
    angles = position * rates[None, :]
    table = torch.empty(length, dim, dtype=torch.float64, device=device)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()


class _EncoderLayer(nn.Module):
    def __init__(self, c: MockingjayConfig):
        super().__init__()
        self.num_heads = c.num_heads
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.attn_out = nn.Linear(c.hidden_size, c.hidden_size)
        self.attn_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.ffn_in = nn.Linear(c.hidden_size, c.intermediate_size)
        self.ffn_out = nn.Linear(c.intermediate_size, c.hidden_size)
        self.ffn_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)
        self.attention_dropout = c.attention_dropout

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, h // self.num_heads).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout if self.training else 0.0
        )
        context = context.transpose(1, 2).reshape(b, t, h)
        x = self.attn_norm(x + self.dropout(self.attn_out(context)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


class MockingjayEncoder(nn.Module):
    """Frames -> all hidden states.

    Args:
        config: model sizes.
    """

    def __init__(self, config: MockingjayConfig):
        super().__init__()
        self.config = config
        c = config
        self.input_projection = nn.Linear(c.input_dim * c.frame_stack, c.hidden_size)
        self.input_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.input_dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(_EncoderLayer(c) for _ in range(c.num_layers))
        self._positions = torch.zeros(0, c.hidden_size)

    masks_padding = True  # attention is masked: real frames never see the batch's padding

    @property
    def frame_stack(self) -> int:
        return self.config.frame_stack

    @property
    def min_frames(self) -> int:
        return self.config.frame_stack

    def extract_features(self, feats: Tensor, lengths: Tensor) -> Tuple[List[Tensor], Tensor]:
        """The encoder contract (:mod:`s3prl_emoaware.models`): ``feats`` (B, T, input_dim), ``lengths`` (B,).

        Returns:
            the ``num_layers + 1`` hidden states (B, T // frame_stack, hidden_size), zero beyond
            each utterance's frames, and their lengths (B,). No intensity is given (downstream use):
            a model trained with ``intensity_input`` sees zeros.
        """
        intensity = torch.zeros(feats.shape[:2], device=feats.device) if self.config.intensity_input else None
        states = self(feats, lengths, intensity)
        lengths = lengths // self.config.frame_stack
        valid = lengths_to_mask(lengths, states[0].shape[1]).unsqueeze(-1).to(states[0].dtype)
        return [s * valid for s in states], lengths

    def _position_table(self, length: int, device) -> Tensor:
        if self._positions.shape[0] < length or self._positions.device != torch.device(device):
            self._positions = sinusoid_positions(max(length, 1024), self.config.hidden_size, device)
        return self._positions[:length]

    def stack_frames(self, feats: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        r = self.config.frame_stack
        if r == 1:
            return feats, lengths
        b, t, d = feats.shape
        t = (t // r) * r
        return feats[:, :t].reshape(b, t // r, d * r), lengths // r

    def forward(self, feats: Tensor, lengths: Tensor, intensity: Optional[Tensor] = None) -> List[Tensor]:
        """``feats``: (B, T, input_dim), ``lengths``: (B,), ``intensity``: (B, T) for ``intensity_input``.

        Returns:
            ``num_layers + 1`` tensors (B, T', hidden_size): the input representation, then each layer.
        """
        if feats.dim() != 3 or feats.shape[-1] != self.config.input_dim:
            raise ValueError(f"expected features (B, T, {self.config.input_dim}), got {tuple(feats.shape)}")
        if self.config.intensity_input:
            if intensity is None:
                raise ValueError("this model was configured with intensity_input: give the intensity")
            feats = feats + intensity[..., None]
        feats, lengths = self.stack_frames(feats, lengths)
        t = feats.shape[1]
        x = self.input_projection(feats) + self._position_table(t, feats.device)
        x = self.input_dropout(self.input_norm(x))
        attn_mask = lengths_to_mask(lengths, t)[:, None, None, :]
        states = [x]
        for layer in self.layers:
            x = layer(x, attn_mask)
            states.append(x)
        return states


class PredictionHead(nn.Module):
    """Pre-training head: dense -> GELU -> LayerNorm -> linear to the target dimension."""

    def __init__(self, hidden_size: int, output_dim: int, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.output = nn.Linear(hidden_size, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.norm(F.gelu(self.dense(x))))


class MockingjayForPretraining(nn.Module):
    """Encoder + reconstruction head (+ optional intensity head) for masked acoustic modelling."""

    def __init__(self, config: MockingjayConfig):
        super().__init__()
        self.config = config
        self.encoder = MockingjayEncoder(config)
        self.head = PredictionHead(config.hidden_size, config.input_dim * config.frame_stack, config.layer_norm_eps)
        self.intensity_head = nn.Linear(config.hidden_size, config.frame_stack) if config.intensity_head else None

    def forward(self, feats: Tensor, lengths: Tensor, intensity: Optional[Tensor] = None):
        """Returns (reconstruction (B, T', input_dim * frame_stack), intensity prediction or None, states)."""
        states = self.encoder(feats, lengths, intensity)
        last = states[-1]
        predicted_intensity = self.intensity_head(last) if self.intensity_head is not None else None
        return self.head(last), predicted_intensity, states


def mockingjay_model(config: MockingjayConfig) -> MockingjayForPretraining:
    return MockingjayForPretraining(config)


def mockingjay_base() -> MockingjayForPretraining:
    """BASE: 3 layers, 768 hidden, 12 heads, 3072 FFN, 240-dim fbank+deltas input."""
    return MockingjayForPretraining(MockingjayConfig())
