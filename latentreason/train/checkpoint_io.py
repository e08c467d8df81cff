"""How Lightning writes our checkpoints: atomically (see `latentreason.atomic`), so an interrupted save never leaves a broken one."""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from latentreason.atomic import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpoint I/O, writing through a temporary file that is renamed when whole."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        write_atomically(path, lambda handle: torch.save(checkpoint, handle))
