"""PonderNet halting (Banino, Balaguer & Blundell 2021), in the per-segment form deep supervision needs.

PonderNet gives step n a halting probability lambda_n = sigmoid(head(h_n)); the probability of
halting exactly at step n is p_n = lambda_n * prod_{j<n} (1 - lambda_j) (with lambda_N = 1 at the
last step N = `max_steps`). Its loss is

    L = sum_n p_n * rec_n  +  beta * KL(p || geometric(lambda_p)).

PonderNet unrolls all N steps in one backward pass. latentreason trains one segment per optimizer
step per row, with the state detached between segments, so the sums over n cannot be formed in
one graph. This policy optimises the same objective in expectation, one segment at a time:

- **Halting is sampled in training**: after segment n a row halts with probability lambda_n
  (always at N). A row therefore reaches segment n with probability prod_{j<n} (1 - lambda_j) and
  halts there with probability p_n: the training rows follow PonderNet's halting distribution.
- **Reconstruction, recursively**: with J_n the expected reconstruction loss from segment n on,
  J_n = lambda_n rec_n + (1 - lambda_n) J_{n+1} and J_N = rec_N, so sum_n p_n rec_n = J_1. Each
  segment adds lambda_n * rec_n + (1 - lambda_n) * V_{n+1}, where V_{n+1} (no gradient) is a value
  head's estimate of J_{n+1}, read from one extra no-grad segment (as HRM's Q-ACT does for its
  continue target). Its gradient in lambda_n, rec_n - V_{n+1}, is PonderNet's exactly when V is
  exact. rec_n is the 0/1 error of segment n (1 - exact correctness of the whole output): the
  halting policy's loss only sees exact correctness. The value head learns V_n by BCE towards
  lambda_n rec_n + (1 - lambda_n) V_{n+1} (rec_N at the last segment).
- **KL to the geometric prior, by the chain rule**: the KL between two halting processes is the
  expected sum, over the segments a row runs before the last, of KL(Bernoulli(lambda_n) ||
  Bernoulli(lambda_p)); with sampled halting its per-segment sum is an unbiased estimate of
  KL(p || geometric(lambda_p) truncated at N, its tail on the last segment). Only its direct
  gradient in lambda_n is used (not the effect of lambda_n on reaching later segments).
- The output loss itself is the framework's deep supervision: every segment a row runs is
  supervised with weight 1, not p_n.

At inference a row stops when its cumulative halting probability 1 - prod_{j<=n} (1 - lambda_j)
exceeds `eval_threshold` (0.5: the median of p), or at `max_steps`; `eval_halt` also offers
PonderNet's own sampling (`sample`), a per-step threshold (`threshold`) and `max_steps`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from latentreason import ConfigError, register
from latentreason.cores.blocks import Linear
from latentreason.halt.base import HaltingPolicy, HaltLogits

EVAL_HALT_RULES = ("cumulative", "sample", "threshold", "max_steps")


def bernoulli_kl(logit: torch.Tensor, lambda_p: float) -> torch.Tensor:
    """KL(Bernoulli(sigmoid(logit)) || Bernoulli(lambda_p)), elementwise, stable for large |logit|."""
    lam = torch.sigmoid(logit)
    log_lam, log_not = F.logsigmoid(logit), F.logsigmoid(-logit)
    return lam * (log_lam - math.log(lambda_p)) + (1 - lam) * (log_not - math.log1p(-lambda_p))


@register("halt", "ponder")
class Ponder(HaltingPolicy):
    """PonderNet: halting probability per segment, sampled halts, KL to a geometric prior (plugin)."""

    def __init__(
        self,
        hidden_size: int,
        max_steps: int = 16,
        lambda_p: float = 0.2,
        beta: float = 0.01,
        loss_weight: float = 1.0,
        eval_halt: str = "cumulative",
        eval_threshold: float = 0.5,
    ):
        super().__init__()
        if max_steps < 1:
            raise ConfigError(f"halt.max_steps must be >= 1, got {max_steps}")
        if not 0.0 < lambda_p < 1.0:
            raise ConfigError(f"halt.lambda_p must be a probability strictly between 0 and 1, got {lambda_p}")
        if eval_halt not in EVAL_HALT_RULES:
            raise ConfigError(
                f"halt.eval_halt={eval_halt!r} is not a rule of the ponder policy; choose one of: {', '.join(EVAL_HALT_RULES)}"
            )
        if not 0.0 <= eval_threshold <= 1.0:
            raise ConfigError(f"halt.eval_threshold={eval_threshold!r} must be a probability in [0, 1]")
        self.max_steps, self.lambda_p, self.beta, self.loss_weight = max_steps, lambda_p, beta, loss_weight
        self.eval_halt, self.eval_threshold = eval_halt, eval_threshold
        self.head = Linear(hidden_size, 2, bias=True)  # [halting logit, value logit]
        with torch.no_grad():  # start at the prior: lambda_n = lambda_p everywhere; value 0.5
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor([math.log(lambda_p / (1 - lambda_p)), 0.0]))
        self._remaining: torch.Tensor | None = None  # inference: prod (1 - lambda_j) of the rows still running

    def logits(self, hidden: torch.Tensor) -> HaltLogits:
        z = self.head(hidden[:, 0]).float()
        # "q_halt" so that the framework's metrics report how often lambda_n >= 0.5 agrees with exactness.
        return {"q_halt": z[:, 0], "ponder_value": z[:, 1]}

    def halt(self, logits: HaltLogits, steps: torch.Tensor, next_logits: Callable[[], HaltLogits]):
        with torch.no_grad():
            lam = torch.sigmoid(logits["q_halt"])
            is_last = steps >= self.max_steps
            if not self.training:
                return self._eval_halted(lam, steps, is_last), {}
            halted = is_last | (torch.rand_like(lam) < lam)
            if bool(is_last.all()):
                next_value = torch.zeros_like(lam)
            else:
                next_value = torch.sigmoid(next_logits()["ponder_value"])
            return halted, {"is_last": is_last, "next_value": next_value}

    def _eval_halted(self, lam: torch.Tensor, steps: torch.Tensor, is_last: torch.Tensor) -> torch.Tensor:
        if self.eval_halt == "max_steps":
            return is_last
        if self.eval_halt == "sample":
            return is_last | (torch.rand_like(lam) < lam)
        if self.eval_halt == "threshold":
            return is_last | (lam > self.eval_threshold)
        # cumulative: needs prod_{j<n} (1 - lambda_j) per row. Inference (run_to_halt) calls halt on
        # the rows still running, in order, from step 1; the rows that halt then leave the batch.
        if bool((steps == 1).all()):
            self._remaining = torch.ones_like(lam)
        elif self._remaining is None or self._remaining.shape != lam.shape:
            raise RuntimeError(
                "halt.eval_halt=cumulative expects halt() on the rows still running, from step 1 on, as run_to_halt calls it"
            )
        remaining = self._remaining * (1 - lam)
        halted = is_last | (1 - remaining > self.eval_threshold)
        self._remaining = remaining[~halted]
        return halted

    def loss(
        self, logits: HaltLogits, targets: dict[str, torch.Tensor], exact: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        if "is_last" not in targets:  # max_steps == 1 or not in training: nothing to learn
            return {}
        z = logits["q_halt"]
        lam = torch.sigmoid(z)
        error = 1.0 - exact.float()
        is_last, next_value = targets["is_last"], targets["next_value"]
        expected = torch.where(
            is_last, error, lam * error + (1 - lam) * next_value
        )  # J_n; no gradient at N (lambda_N = 1)
        kl = torch.where(is_last, torch.zeros_like(z), bernoulli_kl(z, self.lambda_p))
        value = F.binary_cross_entropy_with_logits(logits["ponder_value"], expected.detach(), reduction="sum")
        w = self.loss_weight
        return {"ponder_rec": w * expected.sum(), "ponder_kl": w * self.beta * kl.sum(), "ponder_value": w * value}
