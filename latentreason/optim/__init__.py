"""Optimizers (a registered kind: `optim=adam_atan2`, `optim=adamw`, or any of timm's by name) and the LR schedule."""
