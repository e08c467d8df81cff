"""Diffusion-style latent consistency: every update maps a noisy latent to the clean answer.

Ge, Liao & Poggio (arXiv 2510.00355) read HRM's deep supervision as latent consistency: each
segment, on its own, learns to move whatever latent it is handed toward the solution. This core
makes that explicit, in the form of a (flow-matching / DDIM style) denoiser in latent space:

    state:  z (noisy latent), clean (the current prediction of the answer's latent), level in [0, 1]
    denoise:  clean <- net(z, x + embed(level))               predict the clean answer latent
    renoise:  level <- max(level - 1/num_levels, 0)
              z <- (1 - level) * clean + level * eps_hat,     eps_hat = (z_old - (1 - level_old) * clean) / level_old

The output head reads `clean`, so every update is supervised to predict the answer from the
latent it sees. Training draws the starting point at random: a fresh row starts at a random
level k/num_levels from `(1 - level) * answer + level * noise`, where `answer` is the embedded
solution (given only in training). Rows then continue through the carry, so the model is trained
both on points drawn at random (point supervision, as in diffusion) and along its own trajectory
(segment supervision, as in HRM). Inference starts from pure noise at level 1 and runs the
decreasing schedule; with `num_levels` equal to the halting policy's `max_steps` (and one update
per segment) the last segment reaches level 0. `train_start: noise` trains from pure noise too, so
training sees only the model's own trajectory (segment supervision, no noised answers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from latentreason.cores.base import Core, State, Update, make_rotary
from latentreason.cores.blocks import Linear, Stack
from latentreason.errors import ConfigError
from latentreason.registry import register

LEVEL_FEATURES = 8  # Fourier frequencies used to embed the noise level
# Where a fresh training row starts: "answer" (a random level of the noised answer: point and
# segment supervision) or "noise" (pure noise at level 1, as at inference: segment supervision only).
TRAIN_STARTS = ("answer", "noise")


@register("core", "latent_diffusion")
class LatentDiffusion(Core):
    """Latent diffusion / consistency: a denoiser trained to map any noisy latent to the answer."""

    state_fields = ("z", "clean", "level")
    uses_target = True

    def __init__(
        self,
        seq_len: int,
        hidden_size: int = 512,
        num_heads: int = 8,
        expansion: float = 4.0,
        mlp_multiple: int = 256,
        num_layers: int = 4,
        updates_per_segment: int = 1,
        num_levels: int = 16,
        train_start: str = "answer",
        positions: str = "rope",
        rope_theta: float = 10000.0,
        compile: bool = False,
        make_stack: Callable[..., Stack] | None = None,
    ):
        super().__init__()
        make_stack = make_stack or Stack  # config.block, built by build_model
        if updates_per_segment < 1 or num_levels < 1:
            raise ConfigError(
                f"core.updates_per_segment and core.num_levels must be >= 1, got {updates_per_segment} and {num_levels}"
            )
        if train_start not in TRAIN_STARTS:
            choices = ", ".join(map(repr, TRAIN_STARTS))
            raise ConfigError(f"core.train_start must be one of {choices}, got {train_start!r}")
        self.train_start = train_start
        self.uses_target = train_start == "answer"  # "noise": fresh training rows start as at inference
        self.hidden_size, self.positions = hidden_size, positions
        self.updates_per_segment, self.num_levels = updates_per_segment, num_levels
        self.net = make_stack(num_layers, hidden_size, num_heads, expansion, mlp_multiple)
        self.level_embed = Linear(2 * LEVEL_FEATURES, hidden_size, bias=True)
        self.rotary = make_rotary(positions, hidden_size, num_heads, seq_len, rope_theta)
        self.register_buffer(
            "frequencies", math.pi * 2.0 ** torch.arange(LEVEL_FEATURES, dtype=torch.float32), persistent=False
        )
        self.set_updates({"denoise": self.denoise, "renoise": self.renoise}, compile)

    def initial_state(self, batch_size: int, length: int, device, target: torch.Tensor | None = None) -> State:
        shape = (batch_size, length, self.hidden_size)
        noise = torch.randn(shape, device=device)
        if target is None:  # inference: pure noise at the top of the schedule
            level = torch.ones(batch_size, 1, 1, device=device)
            z = noise
        else:  # training: a random point of the schedule, interpolated toward the answer
            level = torch.randint(1, self.num_levels + 1, (batch_size, 1, 1), device=device) / self.num_levels
            z = (1 - level) * target.to(noise.dtype) + level * noise
        return {"z": z, "clean": torch.zeros(shape, device=device), "level": level}

    def schedule(self) -> tuple[Update, ...]:
        return (Update("denoise", "clean"), Update("renoise", "z")) * self.updates_per_segment

    def denoise(self, z: torch.Tensor, clean: torch.Tensor, level: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        features = level * self.frequencies  # (batch, 1, LEVEL_FEATURES)
        embedded = self.level_embed(torch.cat((features.sin(), features.cos()), dim=-1).to(x.dtype))
        return self.net(z, x + embedded, self.rotary)

    def renoise(
        self, z: torch.Tensor, clean: torch.Tensor, level: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A deterministic (DDIM-style) step down the schedule, keeping the noise the latent implies."""
        implied_noise = (z - (1 - level) * clean) / level.clamp_min(1e-6)
        lower = (level - 1 / self.num_levels).clamp_min(0)
        return (1 - lower) * clean + lower * implied_noise, lower

    def apply(self, update: Update, state: State, x: torch.Tensor) -> State:
        if update.name == "denoise":
            return {**state, "clean": self.update_function("denoise")(state["z"], state["clean"], state["level"], x)}
        z, level = self.update_function("renoise")(state["z"], state["clean"], state["level"], x)
        return {**state, "z": z, "level": level}  # renoise also lowers the level (it carries no gradient)

    def readout(self, state: State) -> torch.Tensor:
        return state["clean"]
