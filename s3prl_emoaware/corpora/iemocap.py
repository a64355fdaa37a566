"""IEMOCAP labels and s3prl's emotion ``meta_data`` files: see :mod:`.layouts.iemocap` (kept for imports)."""

from .layouts.iemocap import LABEL_MAP, SUPERB_LABELS, prepare_iemocap_meta, read_emo_evaluations

__all__ = ["SUPERB_LABELS", "LABEL_MAP", "read_emo_evaluations", "prepare_iemocap_meta"]
