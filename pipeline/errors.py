"""Errors a person can fix: the CLI prints them as one line (traceback only with ``--debug``)."""

from __future__ import annotations

import math


class UserError(Exception):
    """A mistake in the settings or the inputs, not a bug: one line says what and where."""


class ConfigError(UserError, ValueError):
    """A params.yaml key is unknown, missing, of the wrong type or out of range."""


class InputError(UserError):
    """A stage input is missing, stale or corrupt (a shard, a manifest, the index)."""


class NonFiniteError(UserError, FloatingPointError):
    """A loss, feature or metric is NaN or infinite: the stage fails rather than pass it on."""


def check_finite(metrics: dict, what: str, prefix: str = "") -> None:
    """Raise NonFiniteError naming the first NaN or infinite value in a nested metrics dict."""
    for key, value in metrics.items():
        if isinstance(value, dict):
            check_finite(value, what, f"{prefix}{key}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise NonFiniteError(f"{what} metric {prefix}{key} is {value}; nothing was written")
