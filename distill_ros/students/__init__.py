"""The students shipped with the package (distill_ros/students/<task>/: cartpole, hopper, ant; see
docs/results.md) and how a student given by name is found.

The student networks themselves are in `policies/students.py`; they are trained by `distill/`
(`distill-ros distill`) and run on a robot by `nodes/student_controller_node.py`.
"""
from __future__ import annotations

from pathlib import Path

from distill_ros.paths import shipped_checkpoint
from distill_ros.policies.checkpoint import CheckpointError

SHIPPED = Path(__file__).resolve().parent


def shipped_student(task: str) -> Path:
    """The folder of the sensor-only student shipped for `task` (distill_ros/students/<task>)."""
    return shipped_checkpoint(SHIPPED, 'student', task, 'distil one with `distill-ros distill ... --out DIR` and pass '
                              'its DIR/student')


def student_path(value: str) -> Path:
    """A student checkpoint folder as given, or the student shipped under that name (a bare task name
    that is not a folder here: `hopper` is distill_ros/students/hopper)."""
    path = Path(value).expanduser()
    if path.is_dir() or '/' in value or not value:
        return path
    try:
        return shipped_student(value)
    except CheckpointError as exc:
        raise CheckpointError(f'{value!r} is not a folder here, nor the name of a shipped student: {exc}') from None
