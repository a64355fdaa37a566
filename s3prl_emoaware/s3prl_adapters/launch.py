"""``python -m s3prl_emoaware.s3prl_adapters.launch ARGS``: the stock s3prl runner, registered explicitly.

Identical to ``python -m s3prl.run_downstream ARGS`` (same flags, same code path), but it
does not depend on the autoload ``.pth`` hook: it calls :func:`s3prl_emoaware.register`
first. ``s3prl-emoaware run-downstream`` launches this in a child process, so that the
runner's process-wide patches (``hack_isinstance``) never leak into the caller.
"""

from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    from s3prl_emoaware import register

    register()
    from s3prl import run_downstream

    sys.argv = ["run_downstream.py", *(sys.argv[1:] if argv is None else argv)]
    run_downstream.main()


if __name__ == "__main__":
    main()
