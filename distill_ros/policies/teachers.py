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


STUDENTS = Path(__file__).resolve().parent.parent / 'students'


def shipped_student(task: str) -> Path:
    """A sensor-only student shipped for `task` (distill_ros/students/<task>/, see docs/results.md)."""
    path = STUDENTS / task
    if not (path / 'policy.json').is_file():
        have = sorted(p.name for p in STUDENTS.iterdir() if (p / 'policy.json').is_file()) if STUDENTS.is_dir() else []
        raise CheckpointError(f'no student is shipped for task {task!r} (shipped: {have}); distil one with '
                              f'`distill-ros distill ... --out DIR` and pass its DIR/student')
    return path
