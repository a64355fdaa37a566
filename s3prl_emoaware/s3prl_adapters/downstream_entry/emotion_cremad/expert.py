"""Re-export: SER on the corpus named by the config (datarc.layout)."""

from s3prl_emoaware.downstreams.ser.expert import DownstreamExpert  # noqa: F401
