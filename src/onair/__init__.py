"""onair: self-hosted live-shopping streams."""

__version__ = "0.1.0"
