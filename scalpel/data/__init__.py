"""Data: prompts and chat templates, benchmark and training-data loaders."""
