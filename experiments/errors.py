"""Errors that the CLI turns into one line and exit code 2."""


class ConfigError(ValueError):
    """A bad config, option or argument. The message starts with the field it names."""


def check_torch_threads() -> None:
    """$RLFARM_TORCH_THREADS, checked before any work starts (ConfigError naming it)."""
    from rlfarm.cluster.learner import torch_threads

    try:
        torch_threads()
    except ValueError as err:
        raise ConfigError(str(err)) from None


def positive_ints(option: str, text: str, example: str) -> list[int]:
    """A comma-separated list of ints >= 1 given to `option`, or a ConfigError naming it."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ConfigError(f"{option}: expected comma-separated positive ints like {example}, got {text!r}")
    return values
