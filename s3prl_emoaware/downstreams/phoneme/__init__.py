"""Phoneme recognition (SUPERB PR): CTC over LibriSpeech-layout audio, lexicon-based phone targets, PER."""
