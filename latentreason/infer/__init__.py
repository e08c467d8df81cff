"""Inference strategies: spend test-time compute on a trained checkpoint (`infer=NAME` at eval and solve).

`single` is the one pass every run's own evaluation makes; the others wrap it: `more_steps`,
`noise_select` (PTRM), `augment_vote` (Augmented HRM, the ARC papers' voting), `fill` (MaskGIT-style
filling of blanks, surest first) and `ensemble` (several checkpoints, by vote or first to halt).
See docs/inference.md.
"""

from latentreason.infer.base import Candidates, Compute, InferenceStrategy, build_strategy, run_model
from latentreason.infer.evaluate import compare, evaluate

__all__ = ["Candidates", "Compute", "InferenceStrategy", "build_strategy", "compare", "evaluate", "run_model"]
