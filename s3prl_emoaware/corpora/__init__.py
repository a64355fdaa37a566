"""Corpora: readers of the official on-disk layouts and the espeak-ng corpus generator."""
