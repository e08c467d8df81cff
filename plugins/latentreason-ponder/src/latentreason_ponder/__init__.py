"""latentreason-ponder: PonderNet halting (Banino et al. 2021) as a latentreason plugin.

Importing this package registers the halting policy `ponder`; its `conf/` folder holds the card
`conf/halt/ponder.yaml` and the recipe `conf/recipes/ponder_sudoku.yaml`, which latentreason adds
to its config search when it loads the plugin (entry point group `latentreason.plugins`).
"""

from latentreason_ponder.ponder import Ponder

__all__ = ["Ponder"]
__version__ = "0.1.0"
