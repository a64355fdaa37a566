"""Front-end features shared by every model of the package (Kaldi-style log-mel fbank)."""

from .fbank import FbankConfig, FbankFrontend, fbank_frontend, num_frames

__all__ = ["FbankConfig", "FbankFrontend", "fbank_frontend", "num_frames"]
