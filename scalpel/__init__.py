"""scalpel."""
