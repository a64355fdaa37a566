"""Pre-training: data (features, intensities, bucketed batches), objectives (tasks) and the generic trainer."""
