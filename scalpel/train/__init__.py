"""Training: GRPO and SFT arms on TRL, rewards, freezing, checkpoints."""
