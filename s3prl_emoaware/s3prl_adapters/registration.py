"""Registration of our upstreams and downstreams with s3prl (no fork, no user code).

- Upstreams: ``-u NAME`` is ``getattr(s3prl.hub, NAME)``, so every public function of
  :mod:`s3prl_emoaware.s3prl_adapters.hubconf` is set on ``s3prl.hub``.
- Downstreams: ``-d NAME`` imports ``s3prl.downstream.NAME.expert``, so the folder
  ``downstream_entry/`` (one thin package per downstream, re-exporting our expert) is
  appended to ``s3prl.downstream.__path__``.

The functions are called by the autoload hook as s3prl's modules load, and all together
by :func:`s3prl_emoaware.register`. All are idempotent and never overwrite a name that
s3prl itself defines.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import List, Optional

logger = logging.getLogger(__name__)

DOWNSTREAM_ENTRY_DIR = Path(__file__).resolve().parent / "downstream_entry"

__all__ = [
    "apply_compat",
    "register_upstreams",
    "register_downstreams",
    "register_all",
    "upstream_names",
    "downstream_names",
    "DOWNSTREAM_ENTRY_DIR",
]


def apply_compat(module: Optional[ModuleType] = None) -> List[str]:
    from .compat import apply_all

    return apply_all()


def upstream_names() -> List[str]:
    from . import hubconf

    return list(hubconf.__all__)


def downstream_names() -> List[str]:
    return sorted(p.name for p in DOWNSTREAM_ENTRY_DIR.iterdir() if (p / "expert.py").is_file())


def register_upstreams(hub: Optional[ModuleType] = None) -> None:
    if hub is None:
        import s3prl.hub as hub
    from . import hubconf

    for name in hubconf.__all__:
        existing = getattr(hub, name, None)
        if existing is not None and existing is not getattr(hubconf, name):
            logger.warning("s3prl.hub already has %r; not overriding it", name)
            continue
        setattr(hub, name, getattr(hubconf, name))


def register_downstreams(package: Optional[ModuleType] = None) -> None:
    if package is None:
        import s3prl.downstream as package
    entry = str(DOWNSTREAM_ENTRY_DIR)
    if entry not in package.__path__:
        package.__path__.append(entry)


def register_all() -> None:
    apply_compat()
    import s3prl.downstream
    import s3prl.hub

    register_upstreams(s3prl.hub)
    register_downstreams(s3prl.downstream)
