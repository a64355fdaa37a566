"""``-d phoneme_recognition`` entry for s3prl's downstream package path."""
