"""The package's models: tensors and lengths in, tensors out (no I/O, no feature extraction from files).

Encoders (:class:`~.mockingjay.MockingjayEncoder`, :class:`~.npc.NPCModel`,
:class:`~.ecapa.EcapaTdnn`) share one contract, which the generic s3prl upstream
(``s3prl_adapters/upstreams/expert.py``) and the checkpoint builders rely on:

- ``extract_features(feats (B, T, D), lengths (B,)) -> (list of hidden states (B, T', D_i), lengths (B,))``;
- ``frame_stack``: input frames per output frame (``T' = T // frame_stack``);
- ``min_frames``: the fewest input frames the model accepts;
- ``masks_padding``: True when an utterance's outputs never depend on the batch's padding
  (masked attention), False when they may (convolutions), so batches must be computed one by one
  where padding must not matter.

:mod:`.strengthnet` holds StrengthNet, the frame-level emotion-strength model.
"""

from typing import List, Protocol, Tuple

from torch import Tensor

__all__ = ["Encoder"]


class Encoder(Protocol):
    """What every encoder offers (see the module docstring)."""

    frame_stack: int
    min_frames: int
    masks_padding: bool

    def extract_features(self, feats: Tensor, lengths: Tensor) -> Tuple[List[Tensor], Tensor]: ...
