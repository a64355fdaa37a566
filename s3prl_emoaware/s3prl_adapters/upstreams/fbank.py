"""``emoaware_fbank``: the package's own fbank front-end as an s3prl upstream.

A parameter-free baseline that goes through exactly the feature code our SSL upstreams
use, so a leaderboard can separate what the front-end gives from what pre-training adds.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from s3prl.upstream.interfaces import UpstreamBase
from torch import Tensor

from ...config import load_config, shipped_config
from ...features import FbankConfig, FbankFrontend
from .frames import FbankFrameCount

__all__ = ["FbankUpstreamExpert"]


class FbankUpstreamExpert(FbankFrameCount, UpstreamBase):
    """``forward(wavs) -> {"hidden_states": [(B, T, D)]}`` with log-mel fbank features.

    Args:
        model_config: optional YAML with :class:`FbankConfig` fields (``-g`` of the runner);
            defaults to the shipped ``upstream_configs/emoaware_fbank.yaml``.
    """

    def __init__(self, ckpt: Optional[str] = None, model_config: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        path = model_config or shipped_config("upstream_configs", "emoaware_fbank")
        self.frontend = FbankFrontend(load_config(FbankConfig, path))

    def get_downsample_rates(self, key: str) -> int:
        return self.frontend.downsample_rate

    def forward(self, wavs: List[Tensor]) -> Dict[str, List[Tensor]]:
        feats, _ = self.frontend(wavs)
        return {"hidden_states": [feats]}
