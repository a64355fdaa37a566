"""Small shared helpers: atomic writes, audio reading with clear errors, paired statistics."""
