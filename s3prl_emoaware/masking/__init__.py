"""Span masking for masked acoustic modelling (Mockingjay's random spans, the EMS rules)."""

from .spans import (
    MaskCoverage,
    MaskingConfig,
    batch_masks,
    choose_starts,
    corrupt,
    ems_starts,
    ems_topk_starts,
    ems_weighted_starts,
    mask_statistics,
    random_budget,
    random_starts,
    spans_to_mask,
    speech_frames,
)

__all__ = [
    "MaskCoverage",
    "MaskingConfig",
    "batch_masks",
    "choose_starts",
    "corrupt",
    "ems_starts",
    "ems_topk_starts",
    "ems_weighted_starts",
    "mask_statistics",
    "random_budget",
    "random_starts",
    "spans_to_mask",
    "speech_frames",
]
