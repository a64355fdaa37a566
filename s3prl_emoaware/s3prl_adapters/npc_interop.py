"""Moved to :mod:`s3prl_emoaware.checkpoints.s3prl_npc` (the checkpoint package); re-exported here."""

from ..checkpoints.s3prl_npc import *  # noqa: F401,F403
from ..checkpoints.s3prl_npc import __all__  # noqa: F401
