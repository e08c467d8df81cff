"""`noise_select` (PTRM): several noisy runs of the same puzzle, the one the halting head trusts most kept.

Before every segment, Gaussian noise of scale `sigma` is added to the latent state of each noisy
candidate, so the candidates explore different reasoning paths from the same weights; the answer
with the highest halting confidence sigmoid(q_halt) wins. All `samples` candidates of a batch run
stacked along the batch dimension, as one forward per segment. With `clean=true` the first
candidate has no noise, so the choice includes the single pass's answer.
"""

from __future__ import annotations

import torch

from latentreason.errors import ConfigError
from latentreason.infer.base import Candidates, InferenceStrategy, most_confident, needs_q_halt, run_model, valid_rows
from latentreason.registry import register


@register("infer", "noise_select")
class NoiseSelect(InferenceStrategy):
    """PTRM: N candidates with Gaussian noise on the latent at each segment, chosen by Q-halt confidence."""

    def __init__(
        self,
        samples: int = 8,
        sigma: float = 0.1,
        clean: bool = True,
        fields: list | None = None,
        seed: int = 0,
        check: bool = False,
        trained=None,
    ):
        if not isinstance(samples, int) or samples < 1:
            raise ConfigError(f"infer.samples={samples!r} should be a positive integer (the number of candidates)")
        if not sigma >= 0:
            raise ConfigError(f"infer.sigma={sigma!r} should be 0 or more (the noise scale)")
        self.samples, self.sigma, self.clean, self.seed, self.check = samples, float(sigma), clean, seed, check
        self.fields = list(fields) if fields else None

    def _perturb(self, batch: int, device):
        generator = torch.Generator(device=device).manual_seed(self.seed)
        noisy = torch.ones(self.samples * batch, 1, 1, device=device)
        if self.clean:
            noisy[:batch] = 0  # candidate 0 of every row: the single pass

        def perturb(state, rows, step):
            out = {}
            for name, value in state.items():
                latent = value.is_floating_point() and value.ndim == 3 if self.fields is None else name in self.fields
                if latent and self.sigma > 0:
                    noise = torch.randn(value.shape, generator=generator, device=device, dtype=value.dtype)
                    value = value + self.sigma * noise * noisy[rows].to(value.dtype)
                out[name] = value
            return out

        return perturb

    def prepare(self, trained, split) -> None:
        """Check the settings against the model once, before its batches."""
        model = trained.model
        if self.fields is not None:
            unknown = set(self.fields) - set(model.core.state_fields)
            if unknown:
                raise ConfigError(
                    f"infer.fields: {sorted(unknown)} are not state fields of this core "
                    f"({', '.join(model.core.state_fields)})"
                )
        if self.samples > 1:
            needs_q_halt(model, "infer=noise_select with samples > 1")

    def run(self, model, task, inputs, puzzle_ids, compute) -> Candidates:
        batch = len(inputs)
        ids = puzzle_ids.repeat(self.samples) if puzzle_ids is not None else None
        stacked = inputs.repeat(self.samples, 1)  # candidate k of row b at k * batch + b
        every = run_model(model, stacked, ids, compute, perturb=self._perturb(batch, inputs.device)).view(self.samples)
        valid = valid_rows(task, inputs, every.tokens) if self.check else None
        chosen = every.choose(most_confident(every.confidence, valid))
        chosen.checked = self.check
        return chosen
