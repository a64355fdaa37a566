"""One module per corpus layout, registered once in :data:`REGISTRY`.

Each module has ``NAME``, ``detect(root) -> bool`` and ``read(root, **options) -> List[Utterance]``
(options are the layout's own: ``splits`` for LibriSpeech, ``speakers`` for ESD, ``sets`` for
VoxCeleb1). Hidden files (``._x.wav``, ``.DS_Store``) are skipped by every reader.
"""

from . import cremad, esd, fsc, iemocap, librispeech, ravdess, voxceleb
from .common import Utterance

__all__ = ["REGISTRY", "Utterance"]

# detection order: the cheap, unambiguous checks first; LibriSpeech's walks three folder levels
REGISTRY = {m.NAME: m for m in (iemocap, fsc, cremad, ravdess, esd, voxceleb, librispeech)}
