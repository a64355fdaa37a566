"""``s3prl-emoaware plot-intensity WAV --out PNG [--model CKPT | --source energy] [--ems]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .pretrain import MASKING_STRATEGIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("wav", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--source", choices=["strengthnet", "energy"], default="strengthnet")
    parser.add_argument("--model", type=Path, help="StrengthNet checkpoint (for --source strengthnet)")
    parser.add_argument("--ems", action="store_true", help="shade the spans EMS masking would choose (one draw)")
    parser.add_argument(
        "--strategy",
        choices=MASKING_STRATEGIES,
        default="ems",
        help="masking rule to shade with --ems (default: the budget-matched EMS)",
    )
    parser.add_argument("--mask-ratio", type=float, default=0.15)
    parser.add_argument("--span", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0, help="seed of the masking draw")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..intensity.acoustic import energy_intensity
    from ..intensity.alignment import FBANK_GRID, STRENGTHNET_GRID, align_curve
    from ..intensity.plot import plot_intensity
    from ..utils.audio import read_audio
    from ..utils.errors import UserFacingError

    wav = read_audio(args.wav, min_samples=FBANK_GRID.window)
    n = FBANK_GRID.num_frames(len(wav))
    if args.source == "energy":
        curve = align_curve(energy_intensity(wav), FBANK_GRID, FBANK_GRID, n)  # its own framing may differ by one
    else:
        if args.model is None:
            raise UserFacingError("--model CKPT is required with --source strengthnet (or use --source energy)")
        from ..intensity.strengthnet import MelFrontend
        from ..intensity.train import load_strengthnet, predict_frames

        model = load_strengthnet(args.model)
        mel = MelFrontend(model.config.n_mels, model.config.log_mel)(torch.from_numpy(wav)[None])[0]
        curve = align_curve(predict_frames(model, [mel])[0], STRENGTHNET_GRID, FBANK_GRID, n)
    masked = None
    if args.ems:
        from ..features import FbankConfig, FbankFrontend
        from ..masking.spans import MaskingConfig, choose_starts, spans_to_mask, speech_frames

        cfg = MaskingConfig(strategy=args.strategy, mask_ratio=args.mask_ratio, span=args.span)
        with torch.no_grad():  # frame energy for the masker's voice-activity test, as in pre-training
            logmel = FbankFrontend(FbankConfig()).extract_one(torch.from_numpy(wav))
        speech = speech_frames(logmel.mean(-1).numpy()[:n], cfg.vad_threshold)
        starts = choose_starts(cfg, n, np.random.default_rng(args.seed), curve, speech)
        masked = spans_to_mask(starts, n, cfg.span)
    plot_intensity(wav, curve, args.out, title=f"{args.wav.name} ({args.source})", masked=masked)
    print(args.out)
    return 0
