"""Moved: StrengthNet is :mod:`s3prl_emoaware.models.strengthnet`, its front-end
:mod:`s3prl_emoaware.features.mel`; re-exported here."""

from ..features.mel import MelFrontend
from ..models.strengthnet import StrengthNet, StrengthNetConfig, strengthnet, strengthnet_tiny

__all__ = ["StrengthNetConfig", "StrengthNet", "MelFrontend", "strengthnet", "strengthnet_tiny"]
