"""Errors that the CLI turns into one line and exit code 2."""


class ConfigError(ValueError):
    """A bad config, option or argument. The message starts with the field it names."""
