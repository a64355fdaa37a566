"""Thin s3prl ``UpstreamExpert`` classes over the package's models."""
