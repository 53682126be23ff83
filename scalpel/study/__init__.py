"""``scalpel study`` / ``scalpel demo``: one command from base model to the paper's figures (runner, index, claims,
report)."""
