"""``-d emotion_ravdess`` entry for s3prl's downstream package path."""
