"""NPC, Non-autoregressive Predictive Coding (Liu, Chung, Glass; Interspeech 2021).

Each frame is predicted from its context only: after every ConvBlock (Conv1d k3 -> BN ->
ReLU -> Conv1d k1 -> BN -> dropout, residual from the second block on, ReLU) a masked
Conv1d (kernel ``kernel_size``) whose central taps are zeroed, + tanh, reads the block's
output; the masked widths grow by 2 per block (``mask_size + 2``, ``+ 4``, ...), so the
centre frame never leaks through the stack. The masked features are summed across blocks,
quantised by a grouped VQ layer (hard Gumbel-softmax in training, argmax at test time) and a
linear postnet predicts the input frame; L1 on every valid frame. The representation is
the summed masked feature.

Parameter and buffer names follow s3prl's NPC checkpoints (``blocks.{i}.conv``,
``masked_convs.{i}.conv_mask``, ``vq_layers.{i}.vq_logits``, ...) so the two load each
other's weights directly; the code is ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NPCConfig", "NPCModel", "npc_model", "npc_base"]


@dataclass
class NPCConfig:
    """Args:
    input_dim: fbank bins of the input (and of the prediction).
    hidden_size: channels of every block.
    n_blocks: ConvBlocks (each followed by a masked convolution).
    kernel_size: width of the masked convolutions (odd).
    mask_size: zeroed input frames the model must not see (odd); the EMS setting uses 7.
    dropout: dropout in the ConvBlocks.
    residual: residual connections from the second block on.
    batch_norm: BatchNorm in the ConvBlocks.
    activation: ``relu`` or ``tanh``.
    vq_codebook_sizes: codes per VQ group (empty = no VQ).
    vq_code_dims: dimension of each group (must sum to ``hidden_size``).
    gumbel_temperature: Gumbel-softmax temperature.
    intensity_input: the EMS authors' NPC extra: the frame intensity is added to every input
        dimension in pre-training (the masked convolutions hide it at the predicted frame,
        as they hide the frame itself); at downstream time no intensity is given (zeros).
    intensity_head: the authors' second output: a linear head on the representation that
        reconstructs the intensity (an L1 loss summed with the frame loss).
    """

    input_dim: int = 80
    hidden_size: int = 512
    n_blocks: int = 4
    kernel_size: int = 15
    mask_size: int = 7
    dropout: float = 0.1
    residual: bool = True
    batch_norm: bool = True
    activation: str = "relu"
    vq_codebook_sizes: List[int] = field(default_factory=lambda: [64, 64, 64, 64])
    vq_code_dims: List[int] = field(default_factory=lambda: [128, 128, 128, 128])
    gumbel_temperature: float = 1.0
    intensity_input: bool = False
    intensity_head: bool = False

    def __post_init__(self):
        if self.kernel_size % 2 == 0 or self.mask_size % 2 == 0:
            raise ValueError("kernel_size and mask_size must be odd")
        if self.kernel_size <= self.mask_size + 2 * self.n_blocks:
            raise ValueError(
                f"kernel_size {self.kernel_size} must exceed the last masked width {self.mask_size + 2 * self.n_blocks}"
            )
        if self.vq_codebook_sizes and (
            len(self.vq_codebook_sizes) != len(self.vq_code_dims) or sum(self.vq_code_dims) != self.hidden_size
        ):
            raise ValueError("vq_code_dims must have one entry per codebook and sum to hidden_size")
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be relu or tanh, got {self.activation!r}")


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, c: NPCConfig, residual: bool):
        super().__init__()
        self.conv = nn.Conv1d(cin, c.hidden_size, 3, padding=1)
        self.linear = nn.Conv1d(c.hidden_size, c.hidden_size, 1)
        self.bn1 = nn.BatchNorm1d(c.hidden_size) if c.batch_norm else nn.Identity()
        self.bn2 = nn.BatchNorm1d(c.hidden_size) if c.batch_norm else nn.Identity()
        self.act = nn.ReLU() if c.activation == "relu" else nn.Tanh()
        self.dropout = nn.Dropout(c.dropout)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        y = self.dropout(self.bn2(self.linear(self.act(self.bn1(self.conv(x))))))
        return self.act(y + x if self.residual else y)


class _MaskedConv(nn.Module):
    def __init__(self, c: NPCConfig, masked_width: int):
        super().__init__()
        self.conv = nn.Conv1d(c.hidden_size, c.hidden_size, c.kernel_size, padding=c.kernel_size // 2)
        mask = torch.ones_like(self.conv.weight)
        start = (c.kernel_size - masked_width) // 2
        mask[:, :, start : start + masked_width] = 0  # the centre frames are never seen
        self.register_buffer("conv_mask", mask)  # kept for s3prl's state-dict layout
        self.start, self.width = start, masked_width

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, T, C)
        # Only the unmasked taps are computed: the left ones [0, start) and the right ones
        # [start + width, K), each a short convolution over the same padded input; the right
        # one's output is shifted by start + width. Same result as the full masked kernel.
        t, pad, end = x.shape[-1], self.conv.padding[0], self.start + self.width
        w = self.conv.weight * self.conv_mask
        left = F.conv1d(x, w[:, :, : self.start], self.conv.bias, padding=pad)[..., :t]
        right = F.conv1d(x, w[:, :, end:], padding=pad)[..., end : end + t]
        return torch.tanh(left + right).transpose(1, 2)


class _VQGroup(nn.Module):
    def __init__(self, dim: int, codes: int, temperature: float):
        super().__init__()
        self.vq_logits = nn.Linear(dim, codes)
        self.codebook_CxE = nn.Linear(codes, dim, bias=False)
        self.temperature = temperature

    def forward(self, x: Tensor) -> Tensor:
        logits = self.vq_logits(x)
        if self.training:
            onehot = F.gumbel_softmax(logits, tau=self.temperature, hard=True, dim=-1)
        else:
            onehot = F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
        return self.codebook_CxE(onehot)


class NPCModel(nn.Module):
    """Args:
    config: model sizes.
    """

    def __init__(self, config: NPCConfig):
        super().__init__()
        self.config = c = config
        self.blocks = nn.ModuleList(
            _ConvBlock(c.input_dim if i == 0 else c.hidden_size, c, residual=c.residual and i > 0)
            for i in range(c.n_blocks)
        )
        self.masked_convs = nn.ModuleList(_MaskedConv(c, c.mask_size + 2 * (i + 1)) for i in range(c.n_blocks))
        self.vq_layers = nn.ModuleList(
            _VQGroup(d, n, c.gumbel_temperature) for n, d in zip(c.vq_codebook_sizes, c.vq_code_dims)
        )
        self.postnet = nn.Linear(c.hidden_size, c.input_dim)
        self.intensity_head = nn.Linear(c.hidden_size, 1) if c.intensity_head else None

    masks_padding = False  # convolutions carry the batch's padding into the last real frames
    frame_stack = 1
    min_frames = 1

    def extract_features(self, feats: Tensor, lengths: Tensor) -> Tuple[List[Tensor], Tensor]:
        """The encoder contract (:mod:`s3prl_emoaware.models`): ``feats`` (B, T, input_dim), ``lengths`` (B,).

        Returns:
            in s3prl's ``npc_local`` order, each block's output and each masked convolution's
            output, then the summed masked feature (the representation): ``2 * n_blocks + 1``
            tensors (B, T, hidden_size); and the lengths, unchanged. No VQ, no postnet, no intensity.
        """
        feat, states = self.encode(feats)
        return [*states, feat], lengths

    def encode(self, feats: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """``feats`` (B, T, input_dim) -> summed masked feature (B, T, H) and, in s3prl's hook
        order, every block's output and every masked convolution's output (2 * n_blocks states)."""
        if feats.dim() != 3 or feats.shape[-1] != self.config.input_dim:
            raise ValueError(f"expected features (B, T, {self.config.input_dim}), got {tuple(feats.shape)}")
        x = feats.transpose(1, 2)
        states: List[Tensor] = []
        total = None
        for block, masked in zip(self.blocks, self.masked_convs):
            x = block(x)
            m = masked(x)
            states += [x.transpose(1, 2), m]
            total = m if total is None else total + m
        return total, states

    def forward(self, feats: Tensor, intensity: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """``feats`` (B, T, input_dim), ``intensity`` (B, T) with ``intensity_input``.

        Returns the prediction (B, T, input_dim), the representation (B, T, H), and all states."""
        if self.config.intensity_input:
            if intensity is None:
                raise ValueError("this model was configured with intensity_input: give the intensity")
            feats = feats + intensity[..., None]
        feat, states = self.encode(feats)
        if len(self.vq_layers):
            parts = torch.split(feat, self.config.vq_code_dims, dim=-1)
            quantised = torch.cat([vq(p) for vq, p in zip(self.vq_layers, parts)], dim=-1)
        else:
            quantised = feat
        return self.postnet(quantised), feat, states

    def predict_intensity(self, representation: Tensor) -> Tensor:
        """(B, T, H) representation -> (B, T) intensity (needs ``intensity_head``)."""
        if self.intensity_head is None:
            raise ValueError("this model has no intensity head (intensity_head: false)")
        return self.intensity_head(representation).squeeze(-1)


def npc_model(config: NPCConfig) -> NPCModel:
    return NPCModel(config)


def npc_base() -> NPCModel:
    """The paper's sizes with the EMS setting's mask size 7."""
    return NPCModel(NPCConfig())
