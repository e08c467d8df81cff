"""What every recurrent core provides: a state and a schedule of updates to it.

A segment of latent reasoning is a fixed sequence of updates, each writing one part of the state
(HRM: `L L H L L H`). Describing a core this way lets gradient estimators choose which updates
carry gradient, and halting policies choose how many segments run, without knowing the core.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

State = dict[str, torch.Tensor]


def make_rotary(
    positions: str, hidden_size: int, num_heads: int, seq_len: int, rope_theta: float, allowed=("rope", "learned")
):
    """Check `core.positions` and build the rotary embedding it asks for (None for the others)."""
    from latentreason.cores.blocks import Rotary, head_size
    from latentreason.errors import ConfigError

    if positions not in allowed:
        raise ConfigError(f"core.positions must be {' or '.join(repr(a) for a in allowed)}, got {positions!r}")
    return Rotary(head_size(hidden_size, num_heads), seq_len, rope_theta) if positions == "rope" else None


@dataclass(frozen=True)
class Update:
    """One step of a segment: run the function `name`, which writes the state field `writes`."""

    name: str
    writes: str


class Core(nn.Module):
    """Base class: subclasses set `state_fields`, define `schedule`, `apply` and `readout`."""

    state_fields: tuple[str, ...] = ()
    _updates: dict  # update name -> function(*state fields, x) -> the new value of the field it writes
    _compiled: dict  # the same functions through torch.compile (`trainer.compile`), or `_updates` itself
    hidden_size: int
    positions: str = "rope"  # "rope" (handled inside the core) or "learned" (added to the input embedding)
    uses_target = False  # True: a fresh training row starts from a corrupted embedding of its answer

    def register_initial_states(self) -> None:
        """A fixed random start vector per state field (HRM's H_init/L_init), kept as the buffer `<field>_init`."""
        from latentreason.cores.blocks import initial_state_vector

        for field in self.state_fields:
            self.register_buffer(f"{field}_init", initial_state_vector(self.hidden_size), persistent=True)

    def initial_state(self, batch_size: int, length: int, device: torch.device | str) -> State:
        """The state a fresh example starts from (and a halted row is reset to): each field's start vector, broadcast."""
        shape = (batch_size, length, self.hidden_size)
        return {f: getattr(self, f"{f}_init").to(device).expand(shape) for f in self.state_fields}

    def set_updates(self, updates: dict, compile: bool = False) -> None:
        """Register the update functions (no data-dependent Python in them, so each can be one graph).

        With `compile` (`trainer.compile`), training runs them through torch.compile: one batch
        size, a few graphs (with and without gradient). Evaluation runs them eager: its rows leave
        the batch as they halt, it runs under inference mode, and compiling those variants cost more
        than they saved (on 2 CPU cores the first evaluation of a compiled TRM paid tens of seconds
        for new graphs, and the variants hit dynamo's recompile limit).
        """
        self._updates = updates
        self._compiled = {k: torch.compile(f, fullgraph=True) for k, f in updates.items()} if compile else updates

    def update_function(self, name: str):
        """The function to run for the update `name` now: compiled while training (if asked), eager otherwise."""
        if name not in self._updates:
            raise KeyError(f"{type(self).__name__} has no update {name!r}; it has {', '.join(self._updates)}")
        compiled = self.training and not torch.is_inference_mode_enabled()
        return (self._compiled if compiled else self._updates)[name]

    def schedule(self) -> tuple[Update, ...]:
        raise NotImplementedError

    def apply(self, update: Update, state: State, x: torch.Tensor) -> State:
        """Perform one update; returns a new state dict (the input is not modified).

        By default the update function registered as `update.name` is called with the state fields
        (in `state_fields` order) and the input, and its result becomes the field `update.writes`.
        """
        new = self.update_function(update.name)(*(state[f] for f in self.state_fields), x)
        return {**state, update.writes: new}

    def readout(self, state: State) -> torch.Tensor:
        """The hidden states (batch, positions, hidden) the output and halting heads read."""
        raise NotImplementedError

    def reset(self, state: State, rows: torch.Tensor, target: torch.Tensor | None = None) -> State:
        """Put the rows where `rows` is True back to the initial state.

        `target` (the embedded answer, given in training to cores with `uses_target`) lets such a core
        start a fresh row from a corrupted answer rather than from its fixed initial state.
        """
        batch, length = rows.shape[0], next(iter(state.values())).shape[1]
        if self.uses_target:
            fresh = self.initial_state(batch, length, rows.device, target=target)
        else:
            fresh = self.initial_state(batch, length, rows.device)
        mask = rows.view(-1, 1, 1)
        return {k: torch.where(mask, fresh[k].to(v.dtype), v) for k, v in state.items()}
