"""Re-export: s3prl imports ``s3prl.downstream.phoneme_recognition.expert.DownstreamExpert``."""

from s3prl_emoaware.downstreams.phoneme.expert import DownstreamExpert  # noqa: F401
