"""The one ``UpstreamExpert`` of every pre-trained encoder we register (``ems_mockingjay``, ``ems_npc``,
``emo_ecapa``): checkpoint -> encoder and front-end (:func:`s3prl_emoaware.checkpoints.load_encoder`),
``forward(wavs) -> {"hidden_states": encoder.extract_features(...)}``.

Our encoders' contract (:mod:`s3prl_emoaware.models`) is all this needs: ``extract_features``,
``frame_stack`` (the downsample rate is the front-end's hop times it), ``min_frames`` (the
shortest input, checked before any model code) and ``masks_padding`` (whether a frozen batch
can be computed at once without padding reaching real frames; see :mod:`.frames`).

ECAPA encoders also return ``"utterance_embedding"``: the pooled embedding their speaker and
contrastive objectives train (attentive statistics pooling, then the last linear layer),
repeated over the utterance's frames, (B, T, D). The frame-level block outputs in
``hidden_states`` carry little of what the contrastive objective adds (docs/results.md,
"What the SUPERB downstream reads of the contrastive ECAPA"); select the embedding with the
runner's ``-s utterance_embedding`` (mean pooling over the frames gives it back exactly).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from s3prl.upstream.interfaces import UpstreamBase
from torch import Tensor

from ...checkpoints import load_encoder
from ...features import FbankFrontend
from ...models.ecapa import EcapaTdnn
from .frames import FbankFrameCount, one_by_one

__all__ = ["UpstreamExpert"]


class UpstreamExpert(FbankFrameCount, UpstreamBase):
    """``forward(wavs) -> {"hidden_states": [(B, T, D_i)], "last_hidden_state"}`` (plus
    ``"utterance_embedding"`` (B, T, D) for ECAPA encoders).

    Args:
        ckpt: checkpoint file (any kind of ``family``, see ``checkpoints.ENCODER_FAMILIES``).
        model_config: sizes for checkpoints that lack them (a SpeechBrain ECAPA state dict).
        family: which encoder family the checkpoint must hold.
        name: the upstream's name, in error messages.
    """

    def __init__(
        self,
        ckpt: str,
        model_config: Optional[str] = None,
        family: str = "mockingjay",
        name: Optional[str] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.upstream_name = name or family
        self.encoder, fbank = load_encoder(ckpt, family, model_config)
        self.frontend = FbankFrontend(fbank)

    @property
    def frame_stack(self) -> int:
        return self.encoder.frame_stack

    @property
    def min_samples(self) -> int:
        """The shortest waveform: ``min_frames`` of the encoder (two with per-utterance variance
        normalisation, whose std of one frame is undefined), in samples."""
        c = self.frontend.config
        frames = max(self.encoder.min_frames * self.frame_stack, 2 if c.cmvn and c.cmvn_std else 1)
        return c.window_samples + (frames - 1) * c.hop_samples

    def get_downsample_rates(self, key: str) -> int:
        return self.frontend.downsample_rate * self.frame_stack

    def _check(self, wavs: Sequence[Tensor]) -> None:
        if len(wavs) == 0:
            raise ValueError(f"{self.upstream_name}: empty batch (no waveform given)")
        rate = self.frontend.config.sample_rate
        for i, wav in enumerate(wavs):
            if wav.dim() != 1:
                raise ValueError(
                    f"{self.upstream_name}: waveform {i} has shape {tuple(wav.shape)}; expected (samples,) mono audio"
                )
            if wav.numel() < self.min_samples:
                raise ValueError(
                    f"{self.upstream_name}: waveform {i} has {wav.numel()} samples; the minimum is "
                    f"{self.min_samples} ({1000 * self.min_samples / rate:.1f} ms at {rate} Hz)"
                )
            if not torch.isfinite(wav).all():
                raise ValueError(f"{self.upstream_name}: waveform {i} has NaN or Inf samples")

    @property
    def has_utterance_embedding(self) -> bool:
        return isinstance(self.encoder, EcapaTdnn)

    def _states(self, wavs: List[Tensor]) -> List[Tensor]:
        """Each hidden state (B, T, D_i); for ECAPA the utterance embedding, repeated over the
        frames, comes last (one pass computes both)."""
        feats, lengths = self.frontend(wavs)
        lengths = lengths.to(feats.device)
        if not self.has_utterance_embedding:
            return self.encoder.extract_features(feats, lengths)[0]
        embedding, states = self.encoder(feats, lengths)
        return [*states, embedding[:, None, :].expand(-1, states[-1].shape[1], -1)]

    def forward(self, wavs: List[Tensor]) -> Dict[str, List[Tensor]]:
        self._check(wavs)
        if not self.training and not self.encoder.masks_padding:  # padding must not reach real frames
            out = one_by_one(self._states, wavs)
        else:
            states = self._states(wavs)
            out = {"hidden_states": states, "last_hidden_state": states[-1]}
        if self.has_utterance_embedding:
            out["utterance_embedding"] = out["hidden_states"][-1]
            out["hidden_states"] = out["hidden_states"][:-1]
            out["last_hidden_state"] = out["hidden_states"][-1]
        bad = [i for i in range(len(wavs)) if not all(torch.isfinite(s[i]).all() for s in out["hidden_states"])]
        if bad:
            raise ValueError(
                f"{self.upstream_name}: non-finite hidden states (NaN or Inf) for waveform(s) "
                f"{bad} of the batch; the weights or the input are broken"
            )
        return out
