"""Contrastive pre-training from intra-speaker clusters: clustering, pair sampling, losses, objectives."""
