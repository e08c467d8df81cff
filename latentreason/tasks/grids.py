"""The eight symmetries of a square grid (the dihedral group D4), shared by the Maze and ARC tasks.

Transform k maps a 2-D array to one of its 8 rotations/reflections; `inverse_dihedral` undoes it.
Rectangular grids are fine: transforms 1, 3, 6 and 7 swap height and width.
"""

from __future__ import annotations

import numpy as np

DIHEDRAL_NAMES = ("identity", "rot90", "rot180", "rot270", "flip_lr", "flip_ud", "transpose", "anti_transpose")

# Transform k undone by transform INVERSE[k]: the rotations by 90 and 270 degrees undo each other, the rest are their own inverse.
INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    """Transform `k` (0..7, see DIHEDRAL_NAMES) of a 2-D array, as a new contiguous array."""
    if k == 0:
        out = grid
    elif k in (1, 2, 3):
        out = np.rot90(grid, k)  # counter-clockwise
    elif k == 4:
        out = np.fliplr(grid)
    elif k == 5:
        out = np.flipud(grid)
    elif k == 6:
        out = grid.T
    elif k == 7:
        out = np.rot90(grid, 2).T
    else:
        raise ValueError(f"dihedral transform {k!r} does not exist; use 0..7")
    return np.ascontiguousarray(out)


def inverse_dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    return dihedral(grid, INVERSE[k])
