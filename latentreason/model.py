"""A latent-reasoning model: input embedding + a core run by a gradient estimator + output and halting heads.

Nothing here knows which core, estimator or policy it holds; `build_model` composes them from config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from latentreason import registry
from latentreason.cores.base import Core, State
from latentreason.cores.blocks import Linear, truncated_normal_
from latentreason.grad.base import GradientEstimator
from latentreason.halt.base import HaltingPolicy, HaltLogits


class PuzzleEmbedding(nn.Module):
    """Per-puzzle embeddings prepended as extra positions, trained by SignSGD on the rows in use.

    Kept as a buffer, as in the HRM reference, so a large table of puzzle identifiers costs no dense
    optimizer state and is not counted among the model's parameters.
    """

    def __init__(self, num_ids: int, length: int, hidden_size: int, width: int | None = None):
        super().__init__()
        self.length, self.hidden_size = length, hidden_size
        self.width = length * hidden_size if width is None else int(width)
        if not 0 < self.width <= length * hidden_size:
            from latentreason.errors import ConfigError

            raise ConfigError(
                f"model.puzzle_emb_ndim={width} must be between 1 and model.puzzle_emb_len x core.hidden_size = {length * hidden_size}"
            )
        self.register_buffer("table", torch.zeros(num_ids, self.width))
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.table[ids]
        if self.training and torch.is_grad_enabled():
            rows = rows.detach().requires_grad_(True)
            self._pending = (ids, rows)
        if self.width < self.length * self.hidden_size:  # TRM: one position's worth for 16 positions, zero-padded
            rows = torch.nn.functional.pad(rows, (0, self.length * self.hidden_size - self.width))
        return rows.view(-1, self.length, self.hidden_size)

    @torch.no_grad()
    def sign_sgd_step(self, lr: float, weight_decay: float) -> None:
        """Apply decoupled weight decay and a sign step to the rows used since the last step."""
        if self._pending is None:
            return
        ids, rows = self._pending
        self._pending = None
        if rows.grad is None:
            return
        grads = rows.grad
        if (
            torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        ):
            # The table is a buffer, outside DDP's gradient all-reduce: gather every process's rows
            # (in rank order, as one process would see the global batch) so all apply the same step.
            world = torch.distributed.get_world_size()
            all_ids, all_grads = (
                [torch.empty_like(ids) for _ in range(world)],
                [torch.empty_like(grads) for _ in range(world)],
            )
            torch.distributed.all_gather(all_ids, ids.contiguous())
            torch.distributed.all_gather(all_grads, grads.contiguous())
            ids, grads = torch.cat(all_ids), torch.cat(all_grads)
        unique, inverse = ids.unique(return_inverse=True)
        grad = torch.zeros(len(unique), grads.shape[1], device=grads.device).index_add_(0, inverse, grads.float())
        self.table[unique] = self.table[unique] * (1 - lr * weight_decay) - lr * grad.sign()


def adapt_puzzle_table(
    table: torch.Tensor, names: list[str] | None, new_names: list[str] | None, count: int
) -> tuple[torch.Tensor, str | None]:
    """The rows of a saved puzzle-embedding table for data with `count` identifiers, and what was done.

    Rows are matched by identifier name when both sides know their names (so a puzzle keeps its
    embedding wherever it sits in the new data), otherwise by position. Identifiers the table does
    not know start at the mean of its rows, the embedding of "some puzzle seen in training".
    Returns (table, None) when nothing had to change, else a one-line account for the user.
    """
    if names is not None and new_names is not None:
        if list(names) == list(new_names):
            return table, None
        index = {name: row for row, name in enumerate(names)}
        source = [index.get(name, -1) for name in new_names]
        how = "matched by name"
    else:
        if table.shape[0] == count:
            return table, None
        source = [row if row < table.shape[0] else -1 for row in range(count)]
        how = "matched by position"
    source = torch.tensor(source, dtype=torch.long, device=table.device)
    known = source >= 0
    out = table.mean(0, keepdim=True).repeat(count, 1)
    out[known] = table[source[known]]
    kept, new = int(known.sum()), int((~known).sum())
    message = f"The checkpoint's puzzle embeddings cover {table.shape[0]:,} identifiers, the data has {count:,}: {kept:,} rows kept ({how})"
    if new:
        message += f", {new:,} new rows initialised to the mean of the checkpoint's rows"
    if table.shape[0] > kept:
        message += f", {table.shape[0] - kept:,} rows of identifiers absent from the data left out"
    return out, message + "."


class ReasoningModel(nn.Module):
    def __init__(
        self,
        core: Core,
        estimator: GradientEstimator,
        policy: HaltingPolicy,
        vocab_size: int,
        seq_len: int,
        num_puzzle_ids: int = 1,
        puzzle_emb_len: int = 0,
        position_groups: torch.Tensor | None = None,
        puzzle_emb_width: int | None = None,
        state_dtype: str = "float32",
    ):
        super().__init__()
        if state_dtype not in ("float32", "autocast"):
            from latentreason.errors import ConfigError

            raise ConfigError(f"model.state_dtype must be 'float32' or 'autocast', got {state_dtype!r}")
        self.core, self.estimator, self.policy = core, estimator, policy
        self.state_in_autocast_dtype = state_dtype == "autocast"
        hidden = core.hidden_size
        self.seq_len, self.puzzle_emb_len = seq_len, puzzle_emb_len
        self.embed_scale = math.sqrt(hidden)
        self.embed_tokens = nn.Embedding(vocab_size, hidden)
        truncated_normal_(self.embed_tokens.weight, std=1 / self.embed_scale)
        self.puzzle = (
            PuzzleEmbedding(num_puzzle_ids, puzzle_emb_len, hidden, puzzle_emb_width) if puzzle_emb_len else None
        )
        self.positions = None
        if core.positions == "learned":
            self.positions = nn.Parameter(
                truncated_normal_(torch.empty(puzzle_emb_len + seq_len, hidden), std=1 / self.embed_scale)
            )
        self.groups = None
        if position_groups is not None:  # (seq_len, G) ids, e.g. the row, column and box of a cell
            self.register_buffer("position_groups", position_groups.long(), persistent=False)
            self.groups = nn.Embedding(int(position_groups.max()) + 1, hidden)
            truncated_normal_(self.groups.weight, std=1 / self.embed_scale)
        self.lm_head = Linear(hidden, vocab_size)

    @property
    def length(self) -> int:
        """Positions the core sees: puzzle-embedding positions, then the sequence."""
        return self.puzzle_emb_len + self.seq_len

    def embed(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed_tokens(inputs.long())
        if self.groups is not None:  # sum of the cell's group embeddings, kept at unit scale
            x = (x + self.groups(self.position_groups).sum(1)) / math.sqrt(1 + self.position_groups.shape[1])
        if self.puzzle is not None:
            if puzzle_ids is None:
                puzzle_ids = torch.zeros(inputs.shape[0], dtype=torch.long, device=inputs.device)
            x = torch.cat((self.puzzle(puzzle_ids).to(x.dtype), x), dim=1)
        if self.positions is not None:
            x = 0.707106781 * (x + self.positions)  # keeps the sum at unit scale, as the reference
        return self.embed_scale * x

    def initial_state(self, batch_size: int, device) -> State:
        return self.core.initial_state(batch_size, self.length, device)

    def segment(self, state: State, x: torch.Tensor) -> State:
        """One segment of reasoning; the estimator decides which updates carry gradient.

        Under autocast the matrix products run in bf16 either way; with `model.state_dtype=autocast`
        the input, the state and the residual stream between the products are bf16 too (as the
        reference's `forward_dtype`), which halves the bytes the elementwise kernels move.
        """
        if self.state_in_autocast_dtype and torch.is_autocast_enabled(x.device.type):
            low = torch.get_autocast_dtype(x.device.type)
            state, x = {k: v.to(low) for k, v in state.items()}, x.to(low)
        return self.estimator.run(self.core, state, x)

    def halt_logits(self, state: State) -> HaltLogits:
        """The halting head alone: Q-ACT's bootstrap segment needs no output logits."""
        return self.policy.logits(self.core.readout(state))

    def heads(self, state: State) -> tuple[torch.Tensor, HaltLogits]:
        hidden = self.core.readout(state)
        logits = self.lm_head(hidden[:, self.puzzle_emb_len :])
        return logits, self.policy.logits(hidden)


def build_model(
    config: Mapping[str, Any],
    vocab_size: int,
    seq_len: int,
    num_puzzle_ids: int = 1,
    compile: bool = False,
    position_groups: torch.Tensor | None = None,
) -> ReasoningModel:
    """Compose core + estimator + policy from their config cards (`config.core`, `.grad`, `.halt`).

    The core's stacks come from `config.block` (HRM's own block when the config has none, as older checkpoints).

    `position_groups` (from the task) is used only when `model.grid_positions` is on.
    """
    model_config = config.get("model", {})
    puzzle_emb_len = int(model_config.get("puzzle_emb_len", 0))
    puzzle_emb_width = model_config.get("puzzle_emb_ndim")  # None: every position's values are learned
    if not model_config.get("grid_positions", False):
        position_groups = None
    state_dtype = str(model_config.get("state_dtype", "float32"))  # older checkpoints' configs have none
    core_config = config["core"]
    block_config = config.get("block") or {"name": "hrm"}  # an older checkpoint's config has none
    block = registry.build("block", block_config, positions=core_config.get("positions", "rope"))
    core = registry.build("core", core_config, seq_len=puzzle_emb_len + seq_len, compile=compile, make_stack=block)
    estimator = registry.build("grad", config["grad"])
    policy = registry.build("halt", config["halt"], hidden_size=core.hidden_size)
    return ReasoningModel(
        core,
        estimator,
        policy,
        vocab_size,
        seq_len,
        num_puzzle_ids,
        puzzle_emb_len,
        position_groups,
        None if puzzle_emb_width is None else int(puzzle_emb_width),
        state_dtype,
    )
