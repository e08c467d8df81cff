"""A symmetry of a task on token sequences: move positions, relabel tokens, and undo both exactly.

Inference strategies (`infer=augment_vote`) solve a puzzle under several symmetries and map every
answer back; they never need to know the task. A task offers its symmetries with
`Task.symmetries(count, seed)`. Every symmetry here is a permutation of positions and a
permutation of the vocabulary, so its inverse is exact by construction, and many of them can be
applied to a batch at once (`apply_all`, `invert_all`): one gather, no Python loop over symmetries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Symmetry:
    """Output position i takes input position `positions[i]`; token t becomes `tokens[t]`."""

    positions: torch.Tensor  # (seq_len,) long, a permutation
    tokens: torch.Tensor  # (vocab,) long, a permutation
    name: str = ""

    def __post_init__(self) -> None:
        for what, perm in (("positions", self.positions), ("tokens", self.tokens)):
            if not torch.equal(torch.sort(perm).values, torch.arange(len(perm))):
                raise ValueError(f"Symmetry {self.name!r}: {what} is not a permutation")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """The puzzle (or answer) as this symmetry shows it; `tokens` is (..., seq_len)."""
        return self.tokens.to(tokens.device)[tokens[..., self.positions.to(tokens.device)].long()]

    def inverse(self, tokens: torch.Tensor) -> torch.Tensor:
        """Undo `forward`: an answer given under this symmetry, back in the original frame."""
        inverse_positions, inverse_tokens = torch.argsort(self.positions), torch.argsort(self.tokens)
        return inverse_tokens.to(tokens.device)[tokens[..., inverse_positions.to(tokens.device)].long()]

    def inverted(self) -> Symmetry:
        return Symmetry(torch.argsort(self.positions), torch.argsort(self.tokens), f"inverse of {self.name}")


def identity(seq_len: int, vocab_size: int) -> Symmetry:
    return Symmetry(torch.arange(seq_len), torch.arange(vocab_size), "identity")


def apply_all(symmetries: list[Symmetry], tokens: torch.Tensor) -> torch.Tensor:
    """Every symmetry applied to a batch (B, L) at once: (A, B, L), row a under symmetry a."""
    positions = torch.stack([s.positions for s in symmetries]).to(tokens.device)  # (A, L)
    vocab = torch.stack([s.tokens for s in symmetries]).to(tokens.device)  # (A, V)
    moved = tokens.long()[:, positions].transpose(0, 1)  # (A, B, L)
    return torch.gather(vocab[:, None, :].expand(-1, moved.shape[1], -1), 2, moved)


def invert_all(symmetries: list[Symmetry], tokens: torch.Tensor) -> torch.Tensor:
    """Undo `apply_all`: tokens (A, B, L), row a given under symmetry a, back in the original frame."""
    return apply_all_stacked([s.inverted() for s in symmetries], tokens)


def apply_all_stacked(symmetries: list[Symmetry], tokens: torch.Tensor) -> torch.Tensor:
    """Symmetry a applied to tokens[a] for every a: (A, B, L) -> (A, B, L)."""
    positions = torch.stack([s.positions for s in symmetries]).to(tokens.device)  # (A, L)
    vocab = torch.stack([s.tokens for s in symmetries]).to(tokens.device)  # (A, V)
    index = positions[:, None, :].expand(-1, tokens.shape[1], -1)
    moved = torch.gather(tokens.long(), 2, index)
    return torch.gather(vocab[:, None, :].expand(-1, moved.shape[1], -1), 2, moved)
