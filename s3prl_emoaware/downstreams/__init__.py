"""Our own s3prl downstreams (phoneme recognition; SER on other corpora) and their data-root checks."""
