import pytest

from latentreason import registry
from latentreason.errors import ConfigError


def test_builtins_are_listed():
    names = {(e.kind, e.name) for e in registry.entries()}
    assert {("core", "hrm"), ("grad", "one_step"), ("halt", "q_act"), ("task", "sudoku")} <= names


def test_build_checks_keys_against_the_signature():
    with pytest.raises(ConfigError) as error:
        registry.build("core", {"name": "hrm", "hiden_size": 8}, seq_len=10)
    message = str(error.value)
    assert "unknown key 'hiden_size'" in message and "hidden_size" in message


def test_missing_required_key_is_named():
    with pytest.raises(ConfigError, match="missing required key 'hidden_size'"):
        registry.build("halt", {"name": "q_act"})


def test_unknown_name_suggests_close_match():
    with pytest.raises(ConfigError, match="Did you mean 'q_act'"):
        registry.build("halt", {"name": "q_akt"}, hidden_size=8)


def test_card_without_name():
    with pytest.raises(ConfigError, match="has no 'name' key"):
        registry.build("grad", {})


def test_register_build_and_duplicate():
    @registry.register("grad", "test_only_estimator")
    class Dummy:
        """A test estimator."""

        def __init__(self, k: int = 1):
            self.k = k

    built = registry.build("grad", {"name": "test_only_estimator", "k": 3})
    assert isinstance(built, Dummy) and built.k == 3
    assert registry.get("grad", "test_only_estimator").summary == "A test estimator."

    with pytest.raises(ConfigError) as error:

        @registry.register("grad", "test_only_estimator")
        class Other:  # noqa: F841
            pass

    message = str(error.value)
    assert "registered twice" in message and "Dummy" in message and "Other" in message
    registry.unregister("grad", "test_only_estimator")


def test_unknown_kind():
    with pytest.raises(ConfigError, match="Unknown component kind"):
        registry.register("cores")
