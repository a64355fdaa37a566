"""Reliability probes (issue 18): bad inputs and faults planted on generated data."""
