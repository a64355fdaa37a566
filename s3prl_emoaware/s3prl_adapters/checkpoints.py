"""Upstream checkpoints: where they come from (``-k``, else ``$S3PRL_EMOAWARE_HOME/<name>.ckpt``) and safe loading."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..utils.errors import UserFacingError

__all__ = ["resolve_checkpoint", "load_checkpoint", "HOME_ENV"]

HOME_ENV = "S3PRL_EMOAWARE_HOME"


def resolve_checkpoint(name: str, ckpt: Optional[str], how_to_make: str) -> Path:
    """The checkpoint for upstream ``name``; a clear error saying how to get one otherwise."""
    if ckpt:
        path = Path(ckpt)
        if not path.is_file():
            raise UserFacingError(f"{path}: upstream checkpoint not found (-k)")
        return path
    home = os.environ.get(HOME_ENV)
    if home and (Path(home) / f"{name}.ckpt").is_file():
        return Path(home) / f"{name}.ckpt"
    where = f"${HOME_ENV}/{name}.ckpt" + (f" ({Path(home) / f'{name}.ckpt'} does not exist)" if home else
                                           f" (${HOME_ENV} is not set)")
    raise UserFacingError(f"no checkpoint for upstream {name!r}: pass -k CKPT, or put one at {where}. "
                          f"To make one: {how_to_make}")


def load_checkpoint(path) -> dict:
    """Load an upstream checkpoint file (ours or s3prl's format) with ``weights_only=True``.

    s3prl's own pre-training checkpoints pickle an ``argparse.Namespace`` ('Args') and
    sometimes optimizer objects; with the compatibility layer's Namespace allow-list the
    common ones load with ``weights_only=True``; anything else is refused with a clear
    message rather than unpickled silently.
    """
    import torch

    from . import compat

    compat.shim_namespace_safe_global()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserFacingError(f"{path}: cannot load this checkpoint safely (weights_only): {err}. If it is an "
                              "s3prl checkpoint you trust, re-save its entries (e.g. Mockingjay's 'Transformer', "
                              "'SpecHead', 'Upstream_Config', 'Config') as plain dicts.") from None
