"""Batch invariance of our fbank-based upstreams: an utterance's hidden states never depend on its batch.

The stock runner pads a batch, and the featurizer then keeps ``round(samples / rate)`` frames
of each utterance, which for a shorter one includes a few frames computed on padding. A
convolutional upstream also lets the padding reach the last real frames (its receptive field),
so the hidden states of an utterance would change with what it is batched with. Our experts
therefore promise (``batch_invariant = True``): row ``i`` of every hidden state depends on
``wavs[i]`` only, and is zero beyond its own ``num_frames(len(wavs[i]))`` frames. The
hidden-state cache (``s3prl_adapters/hidden_cache.py``) relies on it to give back exactly what
the uncached batch gives.
"""

from __future__ import annotations

from typing import Callable, Dict, List

from torch import Tensor, nn

from ...features import num_frames

__all__ = ["FbankFrameCount", "one_by_one"]


class FbankFrameCount:
    """Mixin for experts with an ``FbankFrontend`` at ``self.frontend``: ``num_frames(samples)``."""

    frame_stack = 1
    batch_invariant = True

    def num_frames(self, num_samples: int) -> int:
        c = self.frontend.config
        return num_frames(num_samples, c.window_samples, c.hop_samples) // self.frame_stack


def one_by_one(states_of: Callable[[List[Tensor]], List[Tensor]], wavs: List[Tensor]) -> Dict[str, object]:
    """``{"hidden_states", "last_hidden_state"}`` of each utterance computed alone, zero-padded into a batch.

    For convolutional upstreams in eval mode (frozen): padding never reaches a real frame. In
    training mode (``-f``) the experts keep one padded batch, which BatchNorm's statistics need.
    """
    alone = [states_of([w]) for w in wavs]
    states = [nn.utils.rnn.pad_sequence([a[k][0] for a in alone], batch_first=True) for k in range(len(alone[0]))]
    return {"hidden_states": states, "last_hidden_state": states[-1]}
