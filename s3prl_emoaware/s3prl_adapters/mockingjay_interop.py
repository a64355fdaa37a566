"""Moved to :mod:`s3prl_emoaware.checkpoints.s3prl_mockingjay` (the checkpoint package); re-exported here."""

from ..checkpoints.s3prl_mockingjay import *  # noqa: F401,F403
from ..checkpoints.s3prl_mockingjay import __all__  # noqa: F401
