"""``ems_mockingjay`` / ``ems_mockingjay_local``: our Mockingjay encoder as an s3prl upstream.

Loads our checkpoints (``weights_only=True``) or s3prl-format Mockingjay checkpoints
(converted on the fly), computes the same fbank features as s3prl's Mockingjay for the
checkpoint's audio config, and returns every hidden state (input representation + each
layer), so the SUPERB featurizer can weight them.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from s3prl.upstream.interfaces import UpstreamBase
from torch import Tensor

from ...checkpoints import load_encoder
from ...features import FbankFrontend
from ...models.mockingjay import lengths_to_mask
from .frames import FbankFrameCount

__all__ = ["MockingjayUpstreamExpert", "load_mockingjay_encoder"]


def load_mockingjay_encoder(path):
    """(encoder in eval mode, fbank config) from our or s3prl's checkpoint format."""
    return load_encoder(path, "mockingjay")


class MockingjayUpstreamExpert(FbankFrameCount, UpstreamBase):
    """``forward(wavs) -> {"hidden_states": [(B, T, H)] * (layers + 1)}``."""

    def __init__(self, ckpt: str, model_config: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder, fbank = load_mockingjay_encoder(ckpt)
        self.frontend = FbankFrontend(fbank)

    @property
    def frame_stack(self) -> int:
        return self.encoder.config.frame_stack

    def get_downsample_rates(self, key: str) -> int:
        return self.frontend.downsample_rate * self.frame_stack

    def forward(self, wavs: List[Tensor]) -> Dict[str, List[Tensor]]:
        feats, lengths = self.frontend(wavs)
        lengths = lengths.to(feats.device)
        intensity = torch.zeros(feats.shape[:2], device=feats.device) if self.encoder.config.intensity_input else None
        states = self.encoder(feats, lengths, intensity)  # no intensity at downstream time (EMS)
        # attention is masked, so real frames never see padding; zero the padded positions too (see .frames)
        valid = lengths_to_mask(lengths // self.frame_stack, states[0].shape[1]).unsqueeze(-1).to(states[0].dtype)
        states = [s * valid for s in states]
        return {"hidden_states": states, "last_hidden_state": states[-1]}
