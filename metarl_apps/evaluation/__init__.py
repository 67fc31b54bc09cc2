"""Meta-test evaluation: run agents on held-out tasks, adaptation curves, confidence intervals."""
