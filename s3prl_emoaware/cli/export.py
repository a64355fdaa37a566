"""``s3prl-emoaware export --format s3prl CKPT OUT``: our Mockingjay or NPC checkpoint in s3prl's format."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", type=Path, help="our pre-training checkpoint (e.g. EXPDIR/last.ckpt)")
    parser.add_argument("out", type=Path, help="where to write the s3prl-format checkpoint")
    parser.add_argument("--format", choices=["s3prl"], default="s3prl")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..s3prl_adapters.mockingjay_interop import config_from_ckpt_dict, to_s3prl_checkpoint
    from ..utils.atomic import atomic_torch_save
    from ..utils.errors import UserFacingError

    if not args.ckpt.is_file():
        raise UserFacingError(f"{args.ckpt}: checkpoint not found")
    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    if ckpt.get("format") != "s3prl_emoaware":
        raise UserFacingError(f"{args.ckpt}: not an s3prl-emoaware checkpoint")
    kind = ckpt.get("kind")
    if kind == "mockingjay":
        model_cfg, fbank = config_from_ckpt_dict(ckpt["config"])
        atomic_torch_save(to_s3prl_checkpoint(ckpt["model"], model_cfg, fbank), args.out)
    elif kind == "npc":
        from ..config import from_dict
        from ..features import FbankConfig
        from ..models.npc import NPCConfig
        from ..s3prl_adapters.npc_interop import to_s3prl_npc

        atomic_torch_save(to_s3prl_npc(ckpt["model"], from_dict(NPCConfig, ckpt["config"]["model"]),
                                       from_dict(FbankConfig, ckpt["config"]["frontend"])), args.out)
    else:
        raise UserFacingError(f"{args.ckpt}: export of {kind!r} checkpoints is not supported")
    print(f"{args.out}: use it with `-u {kind}_local -k {args.out}`")
    return 0
