"""Upstream entry points added to ``s3prl.hub`` (what ``-u NAME`` resolves to).

Each is a plain function with the runner's calling convention
``name(ckpt=<-k>, model_config=<-g>, refresh=<-r>, **kwargs)`` returning an upstream
expert. Expert modules are imported inside the functions so that ``import s3prl.hub``
stays as fast as it was.
"""

from __future__ import annotations

__all__ = ["emoaware_fbank", "ems_mockingjay", "ems_mockingjay_local", "ems_npc", "ems_npc_local", "emo_ecapa",
           "emo_ecapa_local"]


def emoaware_fbank(ckpt=None, model_config=None, refresh=False, **kwargs):
    """The package's log-mel fbank front-end (no parameters); ``-g`` takes a front-end YAML."""
    from .upstreams.fbank import FbankUpstreamExpert

    return FbankUpstreamExpert(ckpt=ckpt, model_config=model_config, **kwargs)


_PRETRAIN_MOCKINGJAY = ("s3prl-emoaware pretrain -c upstream_configs/ems_mockingjay.yaml --corpus CORPUS "
                        "--intensity CACHE --out EXPDIR, then use EXPDIR/last.ckpt")


def ems_mockingjay_local(ckpt=None, model_config=None, refresh=False, **kwargs):
    """Mockingjay pre-trained with emotional masking, from ``-k CKPT`` (ours or s3prl's Mockingjay format)."""
    from .checkpoints import resolve_checkpoint
    from .upstreams.mockingjay import MockingjayUpstreamExpert

    from ..utils.errors import UserFacingError

    if not ckpt:
        raise UserFacingError(f"ems_mockingjay_local needs -k CKPT; to make one: {_PRETRAIN_MOCKINGJAY}")
    return MockingjayUpstreamExpert(ckpt=str(resolve_checkpoint("ems_mockingjay", ckpt, _PRETRAIN_MOCKINGJAY)),
                                    model_config=model_config, **kwargs)


def ems_mockingjay(ckpt=None, model_config=None, refresh=False, **kwargs):
    """EMS Mockingjay: ``-k CKPT``, else ``$S3PRL_EMOAWARE_HOME/ems_mockingjay.ckpt``."""
    from .checkpoints import resolve_checkpoint
    from .upstreams.mockingjay import MockingjayUpstreamExpert

    return MockingjayUpstreamExpert(ckpt=str(resolve_checkpoint("ems_mockingjay", ckpt, _PRETRAIN_MOCKINGJAY)),
                                    model_config=model_config, **kwargs)


_PRETRAIN_NPC = ("s3prl-emoaware pretrain -c upstream_configs/ems_npc.yaml --corpus CORPUS --intensity CACHE "
                 "--out EXPDIR, then use EXPDIR/last.ckpt")


def ems_npc_local(ckpt=None, model_config=None, refresh=False, **kwargs):
    """NPC pre-trained with emotion-aware masking, from ``-k CKPT`` (ours or s3prl's NPC format)."""
    from ..utils.errors import UserFacingError
    from .checkpoints import resolve_checkpoint
    from .upstreams.npc import NPCUpstreamExpert

    if not ckpt:
        raise UserFacingError(f"ems_npc_local needs -k CKPT; to make one: {_PRETRAIN_NPC}")
    return NPCUpstreamExpert(ckpt=str(resolve_checkpoint("ems_npc", ckpt, _PRETRAIN_NPC)), **kwargs)


def ems_npc(ckpt=None, model_config=None, refresh=False, **kwargs):
    """EMS NPC: ``-k CKPT``, else ``$S3PRL_EMOAWARE_HOME/ems_npc.ckpt``."""
    from .checkpoints import resolve_checkpoint
    from .upstreams.npc import NPCUpstreamExpert

    return NPCUpstreamExpert(ckpt=str(resolve_checkpoint("ems_npc", ckpt, _PRETRAIN_NPC)), **kwargs)


_PRETRAIN_ECAPA = ("s3prl-emoaware train-speaker, s3prl-emoaware cluster, then s3prl-emoaware pretrain "
                   "-c upstream_configs/emo_ecapa.yaml --clusters ASSIGNMENTS --out EXPDIR (EXPDIR/last.ckpt)")


def emo_ecapa_local(ckpt=None, model_config=None, refresh=False, **kwargs):
    """ECAPA encoder (contrastive from intra-speaker clusters, or any of ours / SpeechBrain's) from ``-k``."""
    from ..utils.errors import UserFacingError
    from .checkpoints import resolve_checkpoint
    from .upstreams.ecapa import EcapaUpstreamExpert

    if not ckpt:
        raise UserFacingError(f"emo_ecapa_local needs -k CKPT; to make one: {_PRETRAIN_ECAPA}")
    return EcapaUpstreamExpert(ckpt=str(resolve_checkpoint("emo_ecapa", ckpt, _PRETRAIN_ECAPA)),
                               model_config=model_config, **kwargs)


def emo_ecapa(ckpt=None, model_config=None, refresh=False, **kwargs):
    """Contrastive ECAPA: ``-k CKPT``, else ``$S3PRL_EMOAWARE_HOME/emo_ecapa.ckpt``."""
    from .checkpoints import resolve_checkpoint
    from .upstreams.ecapa import EcapaUpstreamExpert

    return EcapaUpstreamExpert(ckpt=str(resolve_checkpoint("emo_ecapa", ckpt, _PRETRAIN_ECAPA)),
                               model_config=model_config, **kwargs)
