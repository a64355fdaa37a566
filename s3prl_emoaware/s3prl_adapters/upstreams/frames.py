"""How many frames an fbank-based upstream of ours outputs for one utterance alone."""

from __future__ import annotations

from ...features import num_frames

__all__ = ["FbankFrameCount"]


class FbankFrameCount:
    """Mixin for experts with an ``FbankFrontend`` at ``self.frontend``: ``num_frames(samples)``.

    The hidden-state cache (``s3prl_adapters/hidden_cache.py``) needs each utterance's own
    frame count to cut a cached batch exactly as the stock padded batch is cut.
    """

    frame_stack = 1

    def num_frames(self, num_samples: int) -> int:
        c = self.frontend.config
        return num_frames(num_samples, c.window_samples, c.hop_samples) // self.frame_stack
