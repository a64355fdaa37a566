"""ECAPA-TDNN (Desplanques et al., Interspeech 2020).

A TDNN block (Conv1d, ReLU, BatchNorm) then SE-Res2Net blocks (1x1 TDNN -> Res2Net with
dilated 3-tap TDNNs over channel groups, each group adding the previous group's output ->
1x1 TDNN -> squeeze-excitation over the valid frames -> residual), multi-layer feature
aggregation (the SE-Res2Net outputs concatenated, 1x1 TDNN), attentive statistics pooling
with global context (each frame's attention sees the frame and the utterance mean and std),
BatchNorm and a linear layer to the embedding.

Convolutions pad "same" with reflection, as SpeechBrain's ``ECAPA_TDNN`` (the de-facto
reference whose public speaker-verification checkpoints users have), so
:func:`load_speechbrain_state_dict` reproduces its embeddings from its state dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EcapaConfig", "EcapaTdnn", "ecapa_tdnn", "load_speechbrain_state_dict", "speechbrain_to_ours"]


@dataclass
class EcapaConfig:
    """Args:
    input_dim: fbank bins.
    channels: TDNN block, SE-Res2Net blocks, then the aggregation (last entry).
    kernel_sizes, dilations: per entry of ``channels``.
    attention_channels: width of the attentive pooling's hidden layer.
    res2net_scale: channel groups of the Res2Net blocks.
    se_channels: squeeze-excitation bottleneck.
    global_context: attentive pooling also sees the utterance mean and std.
    embedding_dim: speaker/emotion embedding size.
    """

    input_dim: int = 80
    channels: List[int] = field(default_factory=lambda: [512, 512, 512, 512, 1536])
    kernel_sizes: List[int] = field(default_factory=lambda: [5, 3, 3, 3, 1])
    dilations: List[int] = field(default_factory=lambda: [1, 2, 3, 4, 1])
    attention_channels: int = 128
    res2net_scale: int = 8
    se_channels: int = 128
    global_context: bool = True
    embedding_dim: int = 192

    def __post_init__(self):
        if not len(self.channels) == len(self.kernel_sizes) == len(self.dilations) or len(self.channels) < 3:
            raise ValueError("channels, kernel_sizes and dilations need the same length (at least 3)")
        if any(c % self.res2net_scale for c in self.channels[1:-1]):
            raise ValueError("SE-Res2Net channels must be multiples of res2net_scale")


def _frame_mask(lengths: Optional[Tensor], t: int, device) -> Tensor:
    if lengths is None:
        return torch.ones(1, 1, t, device=device)
    return (torch.arange(t, device=device)[None, :] < lengths.to(device)[:, None]).float()[:, None, :]


class _Tdnn(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, dilation=dilation)
        self.norm = nn.BatchNorm1d(cout)
        self.pad = dilation * (kernel - 1) // 2

    def forward(self, x: Tensor) -> Tensor:
        if self.pad:
            x = F.pad(x, (self.pad, self.pad), mode="reflect")
        return self.norm(F.relu(self.conv(x)))


class _Res2Net(nn.Module):
    def __init__(self, channels: int, scale: int, kernel: int, dilation: int):
        super().__init__()
        width = channels // scale
        self.scale = scale
        self.blocks = nn.ModuleList(_Tdnn(width, width, kernel, dilation) for _ in range(scale - 1))

    def forward(self, x: Tensor) -> Tensor:
        groups = torch.chunk(x, self.scale, dim=1)
        out, previous = [groups[0]], None
        for block, g in zip(self.blocks, groups[1:]):
            previous = block(g if previous is None else g + previous)
            out.append(previous)
        return torch.cat(out, dim=1)


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, bottleneck, 1)
        self.conv2 = nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        s = (x * mask).sum(2, keepdim=True) / mask.sum(2, keepdim=True)
        return x * torch.sigmoid(self.conv2(F.relu(self.conv1(s))))


class _SERes2NetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, c: EcapaConfig, kernel: int, dilation: int):
        super().__init__()
        self.tdnn1 = _Tdnn(cin, cout, 1, 1)
        self.res2net = _Res2Net(cout, c.res2net_scale, kernel, dilation)
        self.tdnn2 = _Tdnn(cout, cout, 1, 1)
        self.se = _SqueezeExcite(cout, c.se_channels)
        self.shortcut = nn.Conv1d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        residual = self.shortcut(x) if self.shortcut is not None else x
        return self.se(self.tdnn2(self.res2net(self.tdnn1(x))), mask) + residual


def _weighted_stats(x: Tensor, weights: Tensor) -> Tuple[Tensor, Tensor]:
    mean = (weights * x).sum(2)
    std = torch.sqrt((weights * (x - mean[..., None]).pow(2)).sum(2).clamp(min=1e-12))
    return mean, std


class _AttentiveStatsPool(nn.Module):
    def __init__(self, channels: int, attention: int, global_context: bool):
        super().__init__()
        self.global_context = global_context
        self.tdnn = _Tdnn(channels * (3 if global_context else 1), attention, 1, 1)
        self.conv = nn.Conv1d(attention, channels, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        t = x.shape[-1]
        mask = mask.expand(x.shape[0], 1, t)
        if self.global_context:
            mean, std = _weighted_stats(x, mask / mask.sum(2, keepdim=True))
            context = torch.cat([x, mean[..., None].expand(-1, -1, t), std[..., None].expand(-1, -1, t)], dim=1)
        else:
            context = x
        scores = self.conv(torch.tanh(self.tdnn(context))).masked_fill(mask == 0, float("-inf"))
        mean, std = _weighted_stats(x, F.softmax(scores, dim=2))
        return torch.cat([mean, std], dim=1)


class EcapaTdnn(nn.Module):
    """Args:
    config: sizes.
    """

    def __init__(self, config: EcapaConfig):
        super().__init__()
        self.config = c = config
        self.blocks = nn.ModuleList([_Tdnn(c.input_dim, c.channels[0], c.kernel_sizes[0], c.dilations[0])])
        for i in range(1, len(c.channels) - 1):
            self.blocks.append(_SERes2NetBlock(c.channels[i - 1], c.channels[i], c, c.kernel_sizes[i], c.dilations[i]))
        self.mfa = _Tdnn(sum(c.channels[1:-1]), c.channels[-1], c.kernel_sizes[-1], c.dilations[-1])
        self.asp = _AttentiveStatsPool(c.channels[-1], c.attention_channels, c.global_context)
        self.asp_bn = nn.BatchNorm1d(2 * c.channels[-1])
        self.fc = nn.Linear(2 * c.channels[-1], c.embedding_dim)

    masks_padding = False  # reflect-padded convolutions see the batch's padding
    frame_stack = 1

    @property
    def min_frames(self) -> int:
        """Frames the reflection padding needs (it must be shorter than the input)."""
        c = self.config
        return 1 + max(d * (k - 1) // 2 for k, d in zip(c.kernel_sizes, c.dilations))

    def extract_features(self, feats: Tensor, lengths: Tensor) -> Tuple[List[Tensor], Tensor]:
        """The encoder contract (:mod:`s3prl_emoaware.models`): ``feats`` (B, T, input_dim), ``lengths`` (B,).

        Returns:
            the frame-level output of the TDNN block and of every SE-Res2Net block (B, T, C_i),
            and the lengths, unchanged (the utterance embedding is :meth:`forward`'s).
        """
        return self(feats, lengths)[1], lengths

    def forward(self, feats: Tensor, lengths: Optional[Tensor] = None) -> Tuple[Tensor, List[Tensor]]:
        """``feats``: (B, T, input_dim), ``lengths``: (B,) valid frames (None = all).

        Returns:
            embedding (B, embedding_dim) and each block's frame-level output (B, T, C_i).
        """
        if feats.dim() != 3 or feats.shape[-1] != self.config.input_dim:
            raise ValueError(f"expected features (B, T, {self.config.input_dim}), got {tuple(feats.shape)}")
        x = feats.transpose(1, 2)
        mask = _frame_mask(lengths, x.shape[-1], x.device)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x) if i == 0 else block(x, mask)
            outputs.append(x)
        pooled = self.asp(self.mfa(torch.cat(outputs[1:], dim=1)), mask)
        embedding = self.fc(self.asp_bn(pooled))
        return embedding, [o.transpose(1, 2) for o in outputs]


def ecapa_tdnn(config: EcapaConfig = None) -> EcapaTdnn:
    return EcapaTdnn(config or EcapaConfig())


_RENAMES = [
    (r"\.conv\.conv\.", ".conv."),
    (r"\.norm\.norm\.", ".norm."),
    (r"res2net_block\.", "res2net."),
    (r"se_block\.", "se."),
    (r"shortcut\.conv\.", "shortcut."),
    (r"^asp_bn\.norm\.", "asp_bn."),
    (r"^fc\.conv\.", "fc."),
    (r"^asp\.conv\.conv\.", "asp.conv."),
    (r"\.conv1\.conv\.", ".conv1."),
    (r"\.conv2\.conv\.", ".conv2."),
]


def speechbrain_to_ours(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Rename a SpeechBrain ``ECAPA_TDNN`` state dict to ours (the fc becomes a Linear)."""
    ours = {}
    for key, value in state.items():
        for pattern, repl in _RENAMES:
            key = re.sub(pattern, repl, key)
        if key == "fc.weight":
            value = value.squeeze(-1)
        ours[key] = value
    return ours


def load_speechbrain_state_dict(model: EcapaTdnn, state: Dict[str, Tensor]) -> None:
    """Load SpeechBrain ECAPA weights (e.g. a public ``embedding_model.ckpt``) into ``model``."""
    try:
        missing, unexpected = model.load_state_dict(speechbrain_to_ours(state), strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(
            f"not a matching SpeechBrain ECAPA_TDNN state dict: {str(err).splitlines()[-1].strip()}; "
            "check channels/kernel sizes in the config"
        ) from None
    if missing or unexpected:
        raise ValueError(
            f"not a matching SpeechBrain ECAPA_TDNN state dict (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); check channels/kernel sizes in the config"
        )
