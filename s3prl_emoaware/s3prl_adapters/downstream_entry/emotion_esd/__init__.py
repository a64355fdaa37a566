"""``-d emotion_esd`` entry for s3prl's downstream package path."""
