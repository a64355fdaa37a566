"""Frame-level emotion intensity: StrengthNet, its ranking targets, alignment, extraction and cache."""
