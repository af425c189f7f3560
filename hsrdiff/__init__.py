"""HSR-Diff."""
