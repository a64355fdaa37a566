"""StrengthNet (Liu, Sisman, Li; arXiv 2110.03156) in PyTorch.

Frame-level emotion strength from a mel spectrogram (16 kHz, n_fft 512, hop 256, window
512, Hamming: 62.5 frames/s):

- per-frame ``Linear(n_mels, 257)``;
- 12 ``Conv2d`` 3x3 + ReLU in 4 stages of 16/32/64/128 channels; the third convolution of
  each stage strides 3 along frequency only (257 -> 86 -> 29 -> 10 -> 4 bins), so time is
  never downsampled and each frame ends as a 128 x 4 = 512-dim encoding;
- strength branch: BiLSTM(128 per direction) -> Linear 128 + ReLU -> dropout 0.3 ->
  Linear 1 -> frame strength; the utterance strength is its mean over valid frames;
- auxiliary emotion branch: BiLSTM(128) final states -> Linear(n_emotions).

The public reference is Keras code without weights; sizes come from
``upstream_configs/strengthnet.yaml``. Our choices where the paper is silent (config
fields): log-compressed mel input (``log_mel``), and a sigmoid on the frame strength
(``bounded_output``) since targets lie in [0, 1].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import List, Tuple

import torch
from torch import Tensor, nn

__all__ = ["StrengthNetConfig", "StrengthNet", "strengthnet", "strengthnet_tiny", "PRECISIONS"]

PRECISIONS = ("fp32", "bf16")  # what StrengthNet.frame_strength computes in


@dataclass
class StrengthNetConfig:
    """Sizes of StrengthNet (docs/method.md section 3.1 defaults).

    Args:
        n_mels: mel bands of the input.
        dense_dim: per-frame dense layer width (257 = a linear-spectrogram-like axis).
        channels: channels of the 4 conv stages (3 convs each, the third strides 3 in frequency).
        lstm_dim: LSTM units per direction (both branches).
        hidden_dim: width of the dense layer after the strength BiLSTM.
        dropout: dropout before the frame-strength output.
        emotions: labels of the auxiliary emotion classifier.
        log_mel: log-compress the mel magnitudes.
        bounded_output: sigmoid on the frame strength (targets are in [0, 1]).
        emotion_pooling: what the emotion classifier reads of its BiLSTM: ``last`` (the paper's
            final states) or ``mean`` (the outputs averaged over valid frames; our option). The
            final states sit next to the leading and trailing pauses, which every clip shares:
            with ``last`` the logits barely depended on the input (their spread over a batch was
            1e-4 after 200 steps) and the emotion loss stayed at ln 4 for 40 epochs on one corpus.
    """

    n_mels: int = 80
    dense_dim: int = 257
    channels: List[int] = field(default_factory=lambda: [16, 32, 64, 128])
    lstm_dim: int = 128
    hidden_dim: int = 128
    dropout: float = 0.3
    emotions: List[str] = field(default_factory=lambda: ["neu", "hap", "ang", "sad"])
    log_mel: bool = True
    bounded_output: bool = True
    emotion_pooling: str = "last"

    def __post_init__(self):
        if self.emotion_pooling not in ("last", "mean"):
            raise ValueError(f"emotion_pooling must be 'last' or 'mean', got {self.emotion_pooling!r}")
        if len(self.channels) < 1:
            raise ValueError("channels needs at least one stage")
        if self.dense_dim < 3 ** len(self.channels):
            raise ValueError(f"dense_dim {self.dense_dim} is too small for {len(self.channels)} stride-3 stages")


def _conv_stage(cin: int, cout: int) -> List[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, stride=(1, 3), padding=1),
        nn.ReLU(),
    ]


class StrengthNet(nn.Module):
    """Frame and utterance emotion strength, plus emotion logits.

    Args:
        config: model sizes.
    """

    def __init__(self, config: StrengthNetConfig):
        super().__init__()
        self.config = config
        self.dense = nn.Linear(config.n_mels, config.dense_dim)
        layers: List[nn.Module] = []
        cin = 1
        for cout in config.channels:
            layers += _conv_stage(cin, cout)
            cin = cout
        self.convs = nn.Sequential(*layers)
        freq = config.dense_dim
        for _ in config.channels:
            freq = (freq - 1) // 3 + 1
        self.encoding_dim = config.channels[-1] * freq
        self.strength_lstm = nn.LSTM(self.encoding_dim, config.lstm_dim, batch_first=True, bidirectional=True)
        self.strength_head = nn.Sequential(
            nn.Linear(2 * config.lstm_dim, config.hidden_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, 1),
        )
        self.emotion_lstm = nn.LSTM(self.encoding_dim, config.lstm_dim, batch_first=True, bidirectional=True)
        self.emotion_head = nn.Linear(2 * config.lstm_dim, len(config.emotions))
        # global per-band input statistics, set from the training data (see set_input_statistics):
        # log-mel values lie around -11..3, far from what the dense/conv stack trains well on
        self.register_buffer("input_mean", torch.zeros(config.n_mels))
        self.register_buffer("input_std", torch.ones(config.n_mels))
        # He initialisation: with PyTorch's default init the 12 plain ReLU convolutions shrink the
        # signal about 3x per layer, so the BiLSTMs saw ~1e-3 of the input and training collapsed to
        # a constant output (measured); He init keeps the activation scale through the stack
        for m in self.convs:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def set_input_statistics(self, mels: List[Tensor]) -> None:
        """Set the global normalisation from a list of (T, n_mels) training spectrograms."""
        frames = torch.cat(list(mels), dim=0)
        self.input_mean.copy_(frames.mean(0))
        self.input_std.copy_(frames.std(0).clamp(min=1e-3))

    def forward(self, mels: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``mels``: (B, T, n_mels), ``lengths``: (B,) valid frames.

        Returns:
            frame strength (B, T) (0 on padding), utterance strength (B,), emotion logits (B, n_emotions).
        """
        if mels.dim() != 3 or mels.shape[-1] != self.config.n_mels:
            raise ValueError(f"expected mels of shape (B, T, {self.config.n_mels}), got {tuple(mels.shape)}")
        b, t, _ = mels.shape
        mask = torch.arange(t, device=mels.device)[None, :] < lengths[:, None]
        mels = (mels - self.input_mean) / self.input_std
        # zero the padded frames before and after every conv, so a clip's scores do not depend on
        # how much padding its batch has (the 3x3 kernels reach one frame into the padding)
        time_mask = mask[:, None, :, None].to(mels.dtype)
        x = self.dense(mels).unsqueeze(1) * time_mask
        for layer in self.convs:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                x = x * time_mask  # (B, C, T, F')
        x = x.permute(0, 2, 1, 3).reshape(b, t, self.encoding_dim)
        # both BiLSTMs run unpacked (see _bidirectional): a packed sequence's backward pass on CPU
        # zero-fills a full-size gradient per time step (aten::fill_ was 72 % of a training step)
        out, _ = _bidirectional(self.strength_lstm, x, lengths)
        frame = self.strength_head(out).squeeze(-1)
        if self.config.bounded_output:
            frame = torch.sigmoid(frame)
        frame = frame * mask
        utterance = frame.sum(1) / lengths.clamp(min=1).to(frame.dtype)
        emo_out, last = _bidirectional(self.emotion_lstm, x, lengths)
        if self.config.emotion_pooling == "mean":
            summary = (emo_out * mask[..., None]).sum(1) / lengths.clamp(min=1)[:, None].to(emo_out.dtype)
        else:
            summary = last
        logits = self.emotion_head(summary)
        return frame, utterance, logits

    def frame_strength(self, mels: Tensor, lengths: Tensor, precision: str = "fp32") -> Tensor:
        """Inference only: the frame strength of :meth:`forward` in eval mode, (B, T), 0 on padding.

        The same values as ``forward(mels, lengths)[0]`` up to float rounding (tests hold it to 1e-5),
        computed faster on CPU: no autograd, no emotion branch; each convolution and its ReLU in one
        oneDNN call where the build has it; padded frames are zeroed in place and only in the clips
        shorter than the batch (``forward`` multiplies every map by a mask); the strength BiLSTM runs
        unpacked, one pass per direction, the backward pass over each clip reversed within its length,
        so padding only ever follows a clip's frames (a packed sequence costs 2-4x more on CPU,
        measured). Conv weights in channels-last layout (``model.to(memory_format=torch.channels_last)``)
        make the convolutions 1.5x faster.

        ``precision``: ``fp32`` (the curves above) or ``bf16``: the convolutions and the BiLSTM (97 % of
        the operations) compute in bfloat16, the dense input layer and the head in fp32. On a CPU with
        bf16 matrix units (AVX512-BF16 / AMX) it is 3x faster, and the curves move by about 1e-3
        (bfloat16 keeps 8 significant bits); elsewhere bf16 is emulated and slower than fp32.
        """
        if mels.dim() != 3 or mels.shape[-1] != self.config.n_mels:
            raise ValueError(f"expected mels of shape (B, T, {self.config.n_mels}), got {tuple(mels.shape)}")
        if self.training:
            raise ValueError("frame_strength is for inference: call model.eval() first")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        b, t, _ = mels.shape
        lengths = lengths.clamp(max=t).cpu()
        short = [(i, n) for i, n in enumerate(lengths.tolist()) if n < t]

        def zero_padding(x: Tensor) -> Tensor:  # (B, C, T, F)
            for i, n in short:
                x[i, :, n:] = 0
            return x

        low = precision == "bf16"
        with torch.inference_mode():
            x = self.dense((mels - self.input_mean) / self.input_std).unsqueeze(1)
            x = zero_padding(x.to(torch.bfloat16) if low else x)
            for conv in self.convs[::2]:
                x = zero_padding(_conv_relu(conv, x))
            x = x.permute(0, 2, 1, 3).reshape(b, t, self.encoding_dim)
            with torch.autocast(mels.device.type, dtype=torch.bfloat16, enabled=low):
                out, _ = _bidirectional(self.strength_lstm, x, lengths)
            valid = torch.arange(t)[None, :] < lengths[:, None]
            frame = self.strength_head(out.float()).squeeze(-1)
            if self.config.bounded_output:
                frame = torch.sigmoid(frame)
            return frame * valid.to(device=frame.device, dtype=frame.dtype)


def _conv_relu(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``relu(conv(x))`` in ``x``'s dtype (fp32, or bf16 with the fp32 parameters cast), on CPU in one oneDNN
    call (``mkldnn::_convolution_pointwise``, the op torch's own compiler emits for conv + ReLU): the same
    values as the two ops, without a second pass over the map. A separate in-place ReLU took 6 % of the fp32
    forward and 31 % of the bf16 one (its bf16 channels-last kernel is slow)."""
    if x.device.type == "cpu" and _output_width(conv, x) < 2:
        # oneDNN (torch 2.11) writes garbage (1e19, inf) for a convolution strided along the last axis whose
        # output is one column wide: in bf16 at any channel count, in fp32 with one input channel
        # (tests/test_intensity_speed.py). strengthnet_small's last convolution is one (3 -> 1 bins): it runs
        # in fp32 on torch's own kernel, which is right, at no measurable cost.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the flags' own note on TF32 for Intel GPUs
            with torch.backends.mkldnn.flags(enabled=False):
                out = nn.functional.conv2d(x.float(), conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
        return out.relu_().to(x.dtype)
    weight, bias = conv.weight.to(x.dtype), conv.bias.to(x.dtype)  # a no-op in fp32
    fused = x.device.type == "cpu" and _POINTWISE is not None and torch.backends.mkldnn.is_available()
    if fused and (x.dtype != torch.bfloat16 or onednn_bf16_supported()):  # the op refuses bf16 without AVX512
        args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        return _POINTWISE(x, weight, bias, *args, "relu", [], "")
    return nn.functional.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups).relu_()


def _output_width(conv: nn.Conv2d, x: Tensor) -> int:
    span = conv.dilation[1] * (conv.kernel_size[1] - 1) + 1
    return (x.shape[-1] + 2 * conv.padding[1] - span) // conv.stride[1] + 1


_POINTWISE = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)


def onednn_bf16_supported() -> bool:
    """Whether oneDNN runs bf16 on this CPU (AVX512 BW/VL/DQ at least; fast with AVX512-BF16 or AMX). Without
    it, torch computes bf16 convolutions with its own slow kernels (correct, slower than fp32)."""
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and check())


def _bidirectional(lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    """A one-layer bidirectional ``lstm`` over a padded (B, T, D) batch with (B,) valid lengths, as a
    packed sequence would run it, without packing: the forward direction runs over the padded batch
    (padding only follows a clip's frames, so its valid outputs are exact), the backward direction
    over each clip reversed within its length. Returns the outputs (B, T, 2H), whose padded
    positions hold garbage for the caller to mask, and the final states of both directions (B, 2H),
    as ``h_n`` of a packed run. Differentiable; the same values as the packed run up to rounding.
    """
    b, t, _ = x.shape
    lengths = lengths.clamp(min=1, max=t).to(x.device)
    steps = torch.arange(t, device=x.device)[None, :]
    # index that reverses each clip within its length (padding stays where it is)
    reverse = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    forward_out = _lstm_direction(lstm, x, "")
    backward_out = _gather_time(_lstm_direction(lstm, _gather_time(x, reverse), "_reverse"), reverse)
    rows = torch.arange(b, device=x.device)
    last = torch.cat([forward_out[rows, lengths - 1], backward_out[:, 0]], dim=-1)
    return torch.cat([forward_out, backward_out], dim=-1), last


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """``x[b, index[b, t]]`` for a (B, T, D) sequence and a (B, T) index."""
    return torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[-1]))


def _lstm_direction(lstm: nn.LSTM, x: Tensor, suffix: str) -> Tensor:
    """One direction (weights ``*_l0`` or ``*_l0_reverse``) of a one-layer ``lstm``, run forward in time
    over a (B, T, D) batch from zero states: the ATen op ``nn.LSTM`` itself calls."""
    weights = [getattr(lstm, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    h0 = x.new_zeros(1, x.shape[0], lstm.hidden_size)
    return torch.lstm(x, (h0, h0), weights, True, 1, 0.0, False, False, True)[0]


def strengthnet(config: StrengthNetConfig = None) -> StrengthNet:
    return StrengthNet(config or StrengthNetConfig())


def strengthnet_tiny() -> StrengthNet:
    return StrengthNet(StrengthNetConfig(dense_dim=27, channels=[2, 4], lstm_dim=8, hidden_dim=8))
