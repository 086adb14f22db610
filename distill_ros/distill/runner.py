"""The distillation job behind `distill-ros distill` and distill_node."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register `distill-ros distill`."""
