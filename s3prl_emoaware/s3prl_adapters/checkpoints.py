"""Upstream checkpoints: where they come from (``-k``, else ``$S3PRL_EMOAWARE_HOME/<name>.ckpt``).

Loading them is :mod:`s3prl_emoaware.checkpoints`' job (safe, validated, s3prl-free)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..utils.errors import UserFacingError

__all__ = ["resolve_checkpoint", "HOME_ENV"]

HOME_ENV = "S3PRL_EMOAWARE_HOME"


def resolve_checkpoint(name: str, ckpt: Optional[str], how_to_make: str) -> Path:
    """The checkpoint for upstream ``name``; a clear error saying how to get one otherwise."""
    if ckpt:  # checked (missing, a folder, empty, ...) by the loader, which names the kinds it expects
        return Path(ckpt)
    home = os.environ.get(HOME_ENV)
    if home and (Path(home) / f"{name}.ckpt").is_file():
        return Path(home) / f"{name}.ckpt"
    where = f"${HOME_ENV}/{name}.ckpt" + (
        f" ({Path(home) / f'{name}.ckpt'} does not exist)" if home else f" (${HOME_ENV} is not set)"
    )
    raise UserFacingError(
        f"no checkpoint for upstream {name!r}: pass -k CKPT, or put one at {where}. To make one: {how_to_make}"
    )
