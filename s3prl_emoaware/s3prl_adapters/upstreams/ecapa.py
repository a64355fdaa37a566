"""``emo_ecapa`` / ``emo_ecapa_local``: the (contrastively pre-trained) ECAPA encoder as an s3prl upstream.

``hidden_states`` are the frame-level outputs of the TDNN block and of every SE-Res2Net
block (all ``channels[0]`` wide, 10 ms frames), so the SUPERB featurizer's weighted sum and
the downstreams work unchanged. Checkpoints: ours (speaker or contrastive pre-training) or
a SpeechBrain ``ECAPA_TDNN`` state dict (then ``-g`` may give an EcapaConfig YAML for the
sizes; the front-end is ours, not SpeechBrain's feature pipeline).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from s3prl.upstream.interfaces import UpstreamBase
from torch import Tensor

from ...checkpoints import load_encoder
from ...features import FbankFrontend
from .frames import FbankFrameCount, one_by_one

__all__ = ["EcapaUpstreamExpert", "load_ecapa"]


def load_ecapa(path, model_config: Optional[str] = None):
    """(encoder in eval mode, fbank config) from ours or a SpeechBrain ``ECAPA_TDNN`` state dict."""
    return load_encoder(path, "ecapa", model_config)


class EcapaUpstreamExpert(FbankFrameCount, UpstreamBase):
    def __init__(self, ckpt: str, model_config: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder, fbank = load_ecapa(ckpt, model_config)
        self.frontend = FbankFrontend(fbank)

    def get_downsample_rates(self, key: str) -> int:
        return self.frontend.downsample_rate

    def _states(self, wavs: List[Tensor]) -> List[Tensor]:
        feats, lengths = self.frontend(wavs)
        return self.encoder(feats, lengths.to(feats.device))[1]

    def forward(self, wavs: List[Tensor]) -> Dict[str, List[Tensor]]:
        if not self.training:  # reflect-padded convolutions would see the batch's padding (see .frames)
            return one_by_one(self._states, wavs)
        states = self._states(wavs)
        return {"hidden_states": states, "last_hidden_state": states[-1]}
