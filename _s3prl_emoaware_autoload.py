"""Lazy registration hook of s3prl_emoaware, run at interpreter start-up by ``s3prl_emoaware-autoload.pth``.

It is a top-level module on purpose: importing it must not import the ``s3prl_emoaware``
package, so that the package is resolved only when s3prl loads, through ``sys.path`` as it
is then (a checkout on ``sys.path`` wins over the installed copy, as for any package).

The stock ``python -m s3prl.run_downstream`` has no plugin mechanism: ``-u NAME`` is a
``getattr`` on the ``s3prl.hub`` module and ``-d NAME`` an import of
``s3prl.downstream.NAME.expert``. So our names must be added inside the runner's own
process. Doing that eagerly at start-up would import torch in every Python process;
instead this module only puts a tiny finder at the front of ``sys.meta_path``. The finder
does nothing for any module except three, and for those it wraps the normal loader:

- before ``s3prl`` executes: apply the compatibility layer (s3prl 0.4.18 does not import
  on the current torch/torchaudio/huggingface_hub without it);
- after ``s3prl.hub`` executes: add our upstream entry points to it;
- after ``s3prl.downstream`` executes: add our downstream folder to its ``__path__``.

It imports nothing but ``sys``; ``python -X importtime -c "import site"`` shows only this
module.
"""

from __future__ import annotations

import sys

_BEFORE = {"s3prl": "apply_compat"}
_AFTER = {"s3prl.hub": "register_upstreams", "s3prl.downstream": "register_downstreams"}
_TARGETS = set(_BEFORE) | set(_AFTER)


def _run_action(action: str, module) -> None:
    # Imported here: the adapters import torch, which must not happen at start-up.
    from s3prl_emoaware.s3prl_adapters import registration

    getattr(registration, action)(module)


class _HookedLoader:
    """Delegates to the real loader and runs our action around ``exec_module``."""

    def __init__(self, inner, fullname: str):
        self._inner = inner
        self._fullname = fullname

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        if self._fullname in _BEFORE:
            _run_action(_BEFORE[self._fullname], module)
        self._inner.exec_module(module)
        if self._fullname in _AFTER:
            _run_action(_AFTER[self._fullname], module)

    def __getattr__(self, name):
        # get_resource_reader, get_filename, is_package ... stay the real loader's.
        return getattr(self._inner, name)


class _S3prlHookFinder:
    """Finds nothing itself; wraps the loader the other finders return for our targets."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and not isinstance(spec.loader, _HookedLoader):
            spec.loader = _HookedLoader(spec.loader, fullname)
        return spec


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent)."""
    if any(isinstance(f, _S3prlHookFinder) for f in sys.meta_path):
        return
    if "s3prl" in sys.modules:
        # s3prl was imported before us (unusual): register directly instead.
        from s3prl_emoaware import register

        register()
        return
    sys.meta_path.insert(0, _S3prlHookFinder())


install()
