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

from ...config import from_dict, load_config
from ...features import FbankConfig, FbankFrontend
from ...models.ecapa import EcapaConfig, EcapaTdnn, load_speechbrain_state_dict
from ...utils.errors import UserFacingError
from ..checkpoints import load_checkpoint
from .frames import FbankFrameCount, one_by_one

__all__ = ["EcapaUpstreamExpert", "load_ecapa"]


def load_ecapa(path, model_config: Optional[str] = None):
    ckpt = load_checkpoint(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == "s3prl_emoaware" and str(ckpt.get("kind", "")).startswith("ecapa"):
        cfg = from_dict(EcapaConfig, ckpt["config"]["model"])
        fbank = from_dict(FbankConfig, ckpt["config"]["frontend"])
        encoder = EcapaTdnn(cfg)
        encoder.load_state_dict({k[len("encoder."):]: v for k, v in ckpt["model"].items() if k.startswith("encoder.")})
    elif isinstance(ckpt, dict) and "blocks.0.conv.conv.weight" in ckpt:  # SpeechBrain embedding_model.ckpt
        cfg = load_config(EcapaConfig, model_config) if model_config else EcapaConfig(
            input_dim=ckpt["blocks.0.conv.conv.weight"].shape[1])
        fbank = FbankConfig(num_mel_bins=cfg.input_dim, cmvn=True, cmvn_std=False)  # SpeechBrain's sentence mean norm
        encoder = EcapaTdnn(cfg)
        try:
            load_speechbrain_state_dict(encoder, ckpt)
        except ValueError as err:
            raise UserFacingError(f"{path}: {err}") from None
    else:
        raise UserFacingError(f"{path}: not an ECAPA checkpoint (ours or a SpeechBrain ECAPA_TDNN state dict)")
    return encoder.eval(), fbank


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
