"""Upstream entry points added to ``s3prl.hub`` (what ``-u NAME`` resolves to).

Each is a plain function with the runner's calling convention
``name(ckpt=<-k>, model_config=<-g>, refresh=<-r>, **kwargs)`` returning an upstream
expert. Expert modules are imported inside the functions so that ``import s3prl.hub``
stays as fast as it was.
"""

from __future__ import annotations

__all__ = [
    "emoaware_fbank",
    "ems_mockingjay",
    "ems_mockingjay_local",
    "ems_npc",
    "ems_npc_local",
    "emo_ecapa",
    "emo_ecapa_local",
]

# pre-trained upstream -> (encoder family in checkpoints.ENCODER_FAMILIES, how to make a checkpoint);
# every one is served by the generic upstreams.expert.UpstreamExpert
_PRETRAINED = {
    "ems_mockingjay": (
        "mockingjay",
        "s3prl-emoaware pretrain -c upstream_configs/ems_mockingjay.yaml --corpus CORPUS "
        "--intensity CACHE --out EXPDIR, then use EXPDIR/last.ckpt",
    ),
    "ems_npc": (
        "npc",
        "s3prl-emoaware pretrain -c upstream_configs/ems_npc.yaml --corpus CORPUS --intensity CACHE "
        "--out EXPDIR, then use EXPDIR/last.ckpt",
    ),
    "emo_ecapa": (
        "ecapa",
        "s3prl-emoaware train-speaker, s3prl-emoaware cluster, then s3prl-emoaware pretrain "
        "-c upstream_configs/emo_ecapa.yaml --clusters ASSIGNMENTS --out EXPDIR (EXPDIR/last.ckpt)",
    ),
}


def _pretrained(name: str, ckpt, model_config, kwargs: dict, local: bool):
    """Build upstream ``name``; ``local`` (the ``*_local`` entries) requires ``-k``, the others
    fall back to ``$S3PRL_EMOAWARE_HOME/<name>.ckpt``."""
    from ..utils.errors import UserFacingError
    from .checkpoints import resolve_checkpoint
    from .upstreams.expert import UpstreamExpert

    family, how = _PRETRAINED[name]
    if local and not ckpt:
        raise UserFacingError(f"{name}_local needs -k CKPT; to make one: {how}")
    return UpstreamExpert(
        ckpt=str(resolve_checkpoint(name, ckpt, how)), model_config=model_config, family=family, name=name, **kwargs
    )


def emoaware_fbank(ckpt=None, model_config=None, refresh=False, **kwargs):
    """The package's log-mel fbank front-end (no parameters); ``-g`` takes a front-end YAML."""
    from .upstreams.fbank import FbankUpstreamExpert

    return FbankUpstreamExpert(ckpt=ckpt, model_config=model_config, **kwargs)


def ems_mockingjay_local(ckpt=None, model_config=None, refresh=False, **kwargs):
    """Mockingjay pre-trained with emotional masking, from ``-k CKPT`` (ours or s3prl's Mockingjay format)."""
    return _pretrained("ems_mockingjay", ckpt, model_config, kwargs, local=True)


def ems_mockingjay(ckpt=None, model_config=None, refresh=False, **kwargs):
    """EMS Mockingjay: ``-k CKPT``, else ``$S3PRL_EMOAWARE_HOME/ems_mockingjay.ckpt``."""
    return _pretrained("ems_mockingjay", ckpt, model_config, kwargs, local=False)


def ems_npc_local(ckpt=None, model_config=None, refresh=False, **kwargs):
    """NPC pre-trained with emotion-aware masking, from ``-k CKPT`` (ours or s3prl's NPC format)."""
    return _pretrained("ems_npc", ckpt, model_config, kwargs, local=True)


def ems_npc(ckpt=None, model_config=None, refresh=False, **kwargs):
    """EMS NPC: ``-k CKPT``, else ``$S3PRL_EMOAWARE_HOME/ems_npc.ckpt``."""
    return _pretrained("ems_npc", ckpt, model_config, kwargs, local=False)


def emo_ecapa_local(ckpt=None, model_config=None, refresh=False, **kwargs):
    """ECAPA encoder (contrastive from intra-speaker clusters, or any of ours / SpeechBrain's) from ``-k``."""
    return _pretrained("emo_ecapa", ckpt, model_config, kwargs, local=True)


def emo_ecapa(ckpt=None, model_config=None, refresh=False, **kwargs):
    """Contrastive ECAPA: ``-k CKPT``, else ``$S3PRL_EMOAWARE_HOME/emo_ecapa.ckpt``."""
    return _pretrained("emo_ecapa", ckpt, model_config, kwargs, local=False)
