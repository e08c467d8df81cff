"""latentreason: a pluggable framework for latent-reasoning models (HRM, TRM and descendants).

The Python API (see `latentreason.api`): `register`, `add_config_dir`, `load_config`, `run`,
`components`, `recipes`. Importing the package is cheap: torch, Hydra and Lightning are imported
when a function needs them.
"""

from latentreason import registry
from latentreason.api import add_config_dir, components, load, load_config, recipes, register, run
from latentreason.catalogue import populate
from latentreason.errors import ConfigError

registry.set_populate(populate)  # the built-ins and plugins are registered at the first lookup

__all__ = ["register", "add_config_dir", "load_config", "run", "load", "components", "recipes", "ConfigError"]
__version__ = "0.1.0"
