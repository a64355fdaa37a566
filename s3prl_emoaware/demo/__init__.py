"""The main job: the whole emotion-aware pipeline on generated corpora, ending with a leaderboard."""
