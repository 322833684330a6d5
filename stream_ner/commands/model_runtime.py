"""Model sub-commands (placeholder until implemented)."""

from __future__ import annotations

import argparse


def register(group: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``model`` group."""
