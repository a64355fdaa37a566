"""Upstream entry points added to ``s3prl.hub`` (what ``-u NAME`` resolves to).

Each is a plain function with the runner's calling convention
``name(ckpt=<-k>, model_config=<-g>, refresh=<-r>, **kwargs)`` returning an upstream
expert. Expert modules are imported inside the functions so that ``import s3prl.hub``
stays as fast as it was.
"""

from __future__ import annotations

__all__ = ["emoaware_fbank"]


def emoaware_fbank(ckpt=None, model_config=None, refresh=False, **kwargs):
    """The package's log-mel fbank front-end (no parameters); ``-g`` takes a front-end YAML."""
    from .upstreams.fbank import FbankUpstreamExpert

    return FbankUpstreamExpert(ckpt=ckpt, model_config=model_config, **kwargs)
