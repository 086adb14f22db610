"""The teacher role, in one folder: the teachers shipped with the package and the code that finds,
trains and imports teachers.

    distill_ros/teachers/<task>/   shipped teacher checkpoints (cartpole, hopper, ant; docs/teachers.md)
    __init__.py                    `shipped_teacher(task)`: the folder of the one shipped for a task
    train.py                       PPO training of a privileged teacher (`distill-ros train-teacher`)
    importers.py                   teachers trained elsewhere: rsl_rl / Isaac Lab ONNX or TorchScript
                                   exports, stable-baselines3 zips (`distill-ros import-teacher`)

The teacher's network is `policies.mlp.GaussianMLP` (or `policies.onnx_policy.OnnxPolicy` for an
imported graph), saved in the one checkpoint format (`policies.checkpoint`); the ROS 2 node that
runs it on the simulator's privileged state is `nodes/teacher_node.py`.
"""
from __future__ import annotations

from pathlib import Path

from distill_ros.paths import shipped_checkpoint

SHIPPED = Path(__file__).resolve().parent


def shipped_teacher(task: str) -> Path:
    """The folder of the teacher shipped for `task` (distill_ros/teachers/<task>)."""
    return shipped_checkpoint(SHIPPED, 'teacher', task, f'train one with `distill-ros train-teacher --task {task} '
                              '--out DIR` and pass its DIR/best')


def add_teacher_option(parser, default_from: str = 'the task') -> None:
    """The commands' `--teacher` option: a checkpoint folder, else the shipped teacher."""
    parser.add_argument('--teacher', help=f'teacher checkpoint (default: the shipped teacher of {default_from})')


def teacher_folder(teacher: str | None, task: str) -> Path:
    """A `--teacher` value, or the shipped teacher of `task` when it is not given."""
    return Path(teacher) if teacher else shipped_teacher(task)
