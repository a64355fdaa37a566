"""Span masking for masked acoustic modelling (Mockingjay random spans, EMS intensity-ranked spans)."""

from .spans import MaskingConfig, batch_masks, choose_starts, corrupt, ems_starts, random_starts, spans_to_mask

__all__ = ["MaskingConfig", "batch_masks", "choose_starts", "corrupt", "ems_starts", "random_starts", "spans_to_mask"]
