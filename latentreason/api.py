"""The Python API: what `latentreason run` does, callable from a script or a notebook.

```python
import latentreason

@latentreason.register("halt", "my_policy")
class MyPolicy(...): ...

latentreason.add_config_dir("my_conf")          # my_conf/halt/my_policy.yaml, my_conf/recipes/*.yaml
config = latentreason.load_config(["recipe=hrm_sudoku", "halt=my_policy", "preset=cpu"])
metrics = latentreason.run(["recipe=hrm_sudoku", "halt=my_policy", "trainer.max_steps=100"])
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from latentreason.catalogue import add_config_dir
from latentreason.registry import register

__all__ = ["register", "add_config_dir", "load_config", "run", "load", "components", "recipes"]


def load_config(overrides: Sequence[str] = ()):
    """The composed config (an OmegaConf DictConfig) for `latentreason run <overrides>`, preset applied."""
    from latentreason.config import load_config as compose

    return compose(list(overrides))


def run(overrides: Sequence[str] | Any = (), recipe: str | None = None) -> dict[str, float]:
    """Train, evaluate and save, as `latentreason run <overrides>`; returns the held-out metrics.

    `overrides` is a list of `key=value` strings, or a config from `load_config` (then pass
    `recipe` to name the run directory after it).
    """
    from omegaconf import DictConfig

    from latentreason.train.run import run as train

    if isinstance(overrides, DictConfig):
        return train(overrides, recipe)
    overrides = list(overrides)
    if recipe is None:
        recipe = next((o.split("=", 1)[1] for o in overrides if o.startswith("recipe=")), None)
    return train(load_config(overrides), recipe)


def load(path, device: str | None = None):
    """A trained model from a checkpoint of `latentreason run`, for `.solve(puzzle)` and `.predict(batch)`.

    The same inference path as `latentreason eval` and `solve` (`latentreason.inference`):

    ```python
    model = latentreason.load("runs/hrm_sudoku-cpu-20250101-120000/final.ckpt")
    solution = model.solve("530070000600195000098000060800060003400803001700020006060000280000419005000080079")
    solution.answer, solution.segments, solution.confidence
    out = model.predict(model.task.splits()["test"])   # predictions, steps, confidence, metrics
    ```
    """
    from latentreason.inference import load_checkpoint

    return load_checkpoint(path, device)


def components(kind: str | None = None) -> list[tuple[str, str, str]]:
    """(kind, name, origin) of every registered component, or of one kind."""
    from latentreason import registry

    return [(e.kind, e.name, e.origin) for e in registry.entries(kind)]


def recipes() -> dict[str, str]:
    """Every recipe, built-in and added: name -> origin."""
    from latentreason.catalogue import config_options

    return {name: origin for name, (_, origin) in config_options("recipe").items()}
