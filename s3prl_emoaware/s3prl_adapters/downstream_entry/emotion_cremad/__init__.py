"""``-d emotion_cremad`` entry for s3prl's downstream package path."""
