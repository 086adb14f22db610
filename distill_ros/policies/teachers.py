"""Teachers and students shipped with the package (distill_ros/teachers/<task>/ and
distill_ros/students/<task>/; see docs/teachers.md and docs/results.md)."""
from __future__ import annotations

from pathlib import Path

from distill_ros.policies.checkpoint import CheckpointError

SHIPPED = Path(__file__).resolve().parent.parent / 'teachers'
STUDENTS = Path(__file__).resolve().parent.parent / 'students'


def _shipped(folder: Path, role: str, task: str, hint: str) -> Path:
    path = folder / task
    if not (path / 'policy.json').is_file():
        have = sorted(p.name for p in folder.iterdir() if (p / 'policy.json').is_file()) if folder.is_dir() else []
        raise CheckpointError(f'no {role} is shipped for task {task!r} (shipped: {have}); {hint}')
    return path


def shipped_teacher(task: str) -> Path:
    return _shipped(SHIPPED, 'teacher', task, f'train one with `distill-ros train-teacher --task {task} --out DIR` '
                    'and pass its DIR/best')


def shipped_student(task: str) -> Path:
    """A sensor-only student shipped for `task`."""
    return _shipped(STUDENTS, 'student', task, 'distil one with `distill-ros distill ... --out DIR` and pass its '
                    'DIR/student')


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
