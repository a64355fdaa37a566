"""s3prl-emoaware: emotion-aware self-supervised upstreams and SUPERB downstreams for s3prl.

Importing this package does not import torch or s3prl. Registration with s3prl happens
lazily, when s3prl itself is imported (see ``_s3prl_emoaware_autoload``), or
explicitly through :func:`register`.
"""

__version__ = "0.1.0"

__all__ = ["register", "__version__"]


def register() -> None:
    """Apply the s3prl compatibility layer and register our upstreams and downstreams.

    Idempotent. Imports s3prl (and so torch). Use it when the autoload hook is not
    installed, e.g. from a notebook that imported s3prl before this package was installed.
    """
    from .s3prl_adapters.registration import register_all

    register_all()
