"""Entry point of ``s3prl-emoaware``.

Subcommands live in their own modules (``s3prl_emoaware.cli.<module>``), each exposing
``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen subcommand's module is
imported, so ``s3prl-emoaware --help`` answers without importing torch.

Errors the user can fix (bad input, missing tool, unwritable folder) are raised as
:class:`UserFacingError` subclasses or as the package's ``*Error`` types and printed as
one line ``s3prl-emoaware: error: ...`` with exit status 2 (``-v`` also logs the traceback).
That includes every config problem (:class:`~s3prl_emoaware.config.ConfigError`: the file or
``-o`` override and the key) and malformed YAML read anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Dict, List, Optional, Tuple

__all__ = ["main", "SUBCOMMANDS"]

# name -> (module under s3prl_emoaware.cli, one-line help)
SUBCOMMANDS: Dict[str, Tuple[str, str]] = {
    "demo": ("demo", "the main job: generated corpora, pre-training, SUPERB runs, leaderboard"),
    "synth-corpus": ("synth_corpus", "synthesise a speech corpus with espeak-ng in an official on-disk layout"),
    "prepare-iemocap": ("prepare_iemocap", "build s3prl's IEMOCAP meta_data JSON files from the raw layout"),
    "train-strengthnet": ("train_strengthnet", "train StrengthNet (frame-level emotion strength) on a labelled corpus"),
    "intensity": ("intensity", "extract per-frame intensity curves for a corpus into an aligned cache"),
    "plot-intensity": ("plot_intensity", "PNG of a clip's spectrogram with its intensity curve (and EMS masks)"),
    "pretrain": ("pretrain", "pre-train an upstream (EMS or random masking) on a corpus; torchrun for DDP"),
    "train-speaker": ("train_speaker", "train an ECAPA speaker encoder (AAM-softmax) on a corpus's speaker labels"),
    "cluster": ("cluster", "intra-speaker k-means of speaker embeddings, scored against emotion labels"),
    "export": ("export", "convert our checkpoint to s3prl's format (stock mockingjay_local / npc_local -k)"),
    "run-downstream": ("run_downstream", "the stock s3prl runner with our shipped configs (and --all-folds)"),
    "config": ("config", "print the path of a shipped config (for the stock runner's -c), or list them"),
    "ser-study": (
        "ser_study",
        "few-label SER on CREMA-D/ESD/RAVDESS layouts: contrastive vs random-init vs speaker-only ECAPA",
    ),
    "ems-study": (
        "ems_study",
        "EMS vs random masking for Mockingjay and NPC: seeds x folds, paired bootstrap intervals",
    ),
    "leaderboard": ("leaderboard", "collect runner experiment folders into a SUPERB-style table (md, csv, png)"),
}


def _user_error_types() -> Tuple[type, ...]:
    # Every error type of the package that carries a complete, user-facing message.
    from ..config import ConfigError
    from ..utils.atomic import OutputDirError
    from ..utils.audio import AudioError
    from ..utils.errors import UserFacingError

    return (ConfigError, OutputDirError, AudioError, UserFacingError, FileNotFoundError)


def build_parser(argv: List[str]) -> Tuple[argparse.ArgumentParser, Optional[object]]:
    parser = argparse.ArgumentParser(prog="s3prl-emoaware", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = None
    for name, (mod_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(f"{__package__}.{mod_name}")
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser, module


def _one_line_error(message: str, verbose: bool) -> int:
    if verbose:  # -v: the traceback too, for a bug report
        logging.getLogger(__name__).exception("traceback of the error below")
    print(f"s3prl-emoaware: error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, _ = build_parser(argv)
    # run-downstream forwards unknown flags verbatim to the stock runner
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extra and not getattr(args._module, "ACCEPTS_EXTRA_ARGS", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    args.argv = argv  # the whole command line, for a resume command that rewrites it (run-downstream -e)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from ..utils.signals import Interrupted, terminate_as_interrupt

    try:
        with terminate_as_interrupt():  # a scheduler's SIGTERM unwinds like Ctrl-C: cleanup runs
            return int(args._module.run(args) or 0)
    except _user_error_types() as err:
        return _one_line_error(str(err), args.verbose)
    except Exception as err:
        import yaml

        if not isinstance(err, yaml.YAMLError):
            raise
        from ..config import describe_yaml_error

        # a YAML file read outside s3prl_emoaware.config (e.g. the runner's own): still one line
        name = getattr(getattr(err, "problem_mark", None), "name", None)
        return _one_line_error(f"{name or 'a YAML file'}: not valid YAML: {describe_yaml_error(err)}", args.verbose)
    except Interrupted as err:  # a trainer saved its state first
        if os.environ.get("RANK", "0") == "0":
            print(f"s3prl-emoaware: {err.message(argv, with_flag=hasattr(args, 'resume'))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("s3prl-emoaware: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
