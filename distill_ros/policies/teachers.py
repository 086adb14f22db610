"""Teachers shipped with the package (distill_ros/teachers/<task>/, see docs/teachers.md)."""
from __future__ import annotations

from pathlib import Path

from distill_ros.policies.checkpoint import CheckpointError

SHIPPED = Path(__file__).resolve().parent.parent / 'teachers'


def shipped_teacher(task: str) -> Path:
    path = SHIPPED / task
    if not (path / 'policy.json').is_file():
        have = sorted(p.name for p in SHIPPED.iterdir() if (p / 'policy.json').is_file()) if SHIPPED.is_dir() else []
        raise CheckpointError(f'no teacher is shipped for task {task!r} (shipped: {have}); train one with '
                              f'`distill-ros train-teacher --task {task} --out DIR` and pass its DIR/best')
    return path
