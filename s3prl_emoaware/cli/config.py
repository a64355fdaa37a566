"""``s3prl-emoaware config {upstream,downstream} [NAME]``: path of a shipped config (or the list).

For the stock runner, which needs ``-c PATH``:
``python -m s3prl.run_downstream ... -c "$(s3prl-emoaware config downstream emotion)"``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["upstream", "downstream"])
    parser.add_argument("name", nargs="?", help="config name (without .yaml); omit to list them")


def run(args: argparse.Namespace) -> int:
    from ..config import shipped_config, shipped_config_dir

    kind = f"{args.kind}_configs"
    if args.name is None:
        for path in sorted(shipped_config_dir(kind).glob("*.yaml")):
            print(path.stem)
        return 0
    print(shipped_config(kind, args.name))
    return 0
