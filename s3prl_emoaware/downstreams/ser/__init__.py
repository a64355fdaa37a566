"""Speech emotion recognition on corpora other than IEMOCAP (CREMA-D, ESD, RAVDESS): splits, metrics, expert."""
