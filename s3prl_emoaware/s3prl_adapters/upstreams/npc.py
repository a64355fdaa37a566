"""``ems_npc`` / ``ems_npc_local``: our NPC as an s3prl upstream (ours or s3prl's checkpoint format).

``hidden_states`` are, in s3prl's ``npc_local`` order, each block's output and each masked
convolution's output, then the summed masked feature (the NPC representation): 2 x blocks + 1.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from s3prl.upstream.interfaces import UpstreamBase
from torch import Tensor

from ...checkpoints import load_encoder
from ...features import FbankFrontend
from .frames import FbankFrameCount, one_by_one

__all__ = ["NPCUpstreamExpert", "load_npc"]


def load_npc(path):
    """(model in eval mode, fbank config) from our or s3prl's NPC checkpoint format."""
    return load_encoder(path, "npc")


class NPCUpstreamExpert(FbankFrameCount, UpstreamBase):
    def __init__(self, ckpt: str, model_config: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.model, fbank = load_npc(ckpt)
        self.frontend = FbankFrontend(fbank)

    def get_downsample_rates(self, key: str) -> int:
        return self.frontend.downsample_rate

    def _states(self, wavs: List[Tensor]) -> List[Tensor]:
        feats, _ = self.frontend(wavs)
        feat, states = self.model.encode(feats)  # no VQ/postnet: only the representation is needed
        return [*states, feat]

    def forward(self, wavs: List[Tensor]) -> Dict[str, List[Tensor]]:
        if not self.training:  # the convolutions would carry padding into the last frames (see .frames)
            return one_by_one(self._states, wavs)
        states = self._states(wavs)
        return {"hidden_states": states, "last_hidden_state": states[-1]}
