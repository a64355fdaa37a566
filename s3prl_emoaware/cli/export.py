"""``s3prl-emoaware export --format s3prl CKPT OUT``: our Mockingjay or NPC checkpoint in s3prl's format."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", type=Path, help="our pre-training checkpoint (e.g. EXPDIR/last.ckpt)")
    parser.add_argument("out", type=Path, help="where to write the s3prl-format checkpoint")
    parser.add_argument("--format", choices=["s3prl"], default="s3prl")


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import load_encoder, read_checkpoint
    from ..checkpoints.s3prl_mockingjay import config_from_ckpt_dict, to_s3prl_checkpoint
    from ..checkpoints.s3prl_npc import to_s3prl_npc
    from ..config import from_dict
    from ..features import FbankConfig
    from ..models.npc import NPCConfig
    from ..utils.atomic import atomic_torch_save

    ckpt = read_checkpoint(args.ckpt, ("mockingjay", "npc"))
    kind = ckpt["kind"]
    load_encoder(args.ckpt, kind)  # its config and weights are checked before anything is written
    if kind == "mockingjay":
        model_cfg, fbank = config_from_ckpt_dict(ckpt["config"])
        atomic_torch_save(to_s3prl_checkpoint(ckpt["model"], model_cfg, fbank), args.out)
    else:
        atomic_torch_save(
            to_s3prl_npc(
                ckpt["model"],
                from_dict(NPCConfig, ckpt["config"]["model"]),
                from_dict(FbankConfig, ckpt["config"]["frontend"]),
            ),
            args.out,
        )
    print(f"{args.out}: use it with `-u {kind}_local -k {args.out}`")
    return 0
