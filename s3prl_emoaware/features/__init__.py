"""Front-end features shared by every model of the package: Kaldi-style log-mel fbank (:mod:`.fbank`, the
encoders') and StrengthNet's mel spectrogram (:mod:`.mel`)."""

from .fbank import FbankConfig, FbankFrontend, fbank_frontend, num_frames
from .mel import MelFrontend

__all__ = ["FbankConfig", "FbankFrontend", "fbank_frontend", "num_frames", "MelFrontend"]
