"""Teacher-vs-student evaluation, the report (table + plots), and the `eval`, `report`, `export` commands."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this module's `distill-ros` subcommands."""
