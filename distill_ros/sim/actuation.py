"""Per-joint actuation values of a task, resolved against the joints a policy drives.

A task's `actuation` gives kp, kd, the default pose, action scale and torque limits as one number for every
joint or as `{joint name or regex: number}` (e.g. `'.*_calf_joint': 45.0`). `resolve` turns
them into vectors in action order; the simulator and the student controller both call it, so
the pose the simulator trains around is the pose the controller commands around. No mujoco
or rclpy here.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distill_ros.sim.task import POSITION, Actuation, JointValues, TaskConfigError, TaskSpec, load_task


def joint_values(values: JointValues, joints: Sequence[str], key: str, source: str = '') -> np.ndarray:
    """One value per joint of `joints`: a joint's own name wins over a regex (`re.fullmatch`); a
    joint that no key covers, a joint two regexes give different values, and a key that names no
    joint are refused with the key and the joints."""
    where = f'{source}: {key}' if source else key
    if not isinstance(values, dict):
        return np.full(len(joints), float(values))
    out = np.empty(len(joints))
    used: set[str] = set()
    for i, joint in enumerate(joints):
        if joint in values:
            out[i] = values[joint]
            used.add(joint)
            continue
        matches = {pattern: v for pattern, v in values.items() if pattern not in joints and _fullmatch(pattern, joint)}
        if not matches:
            raise TaskConfigError(f'{where} gives no value for joint {joint!r}; keys {list(values)}, '
                                  f'joints {list(joints)}')
        if len(set(matches.values())) > 1:
            raise TaskConfigError(f'{where}: joint {joint!r} matches {sorted(matches)} with different values')
        out[i] = next(iter(matches.values()))
        used.update(matches)
    unused = [k for k in values if k not in used]
    if unused:
        raise TaskConfigError(f'{where} names {unused}, which match no actuated joint; the actuated joints '
                              f'are {list(joints)}')
    return out


def _fullmatch(pattern: str, name: str) -> bool:
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


@dataclass(frozen=True)
class PositionActuation:
    """A position-actuated task's values in action order."""

    joints: tuple[str, ...]
    kp: np.ndarray
    kd: np.ndarray
    default_pose: np.ndarray
    torque_limit: np.ndarray
    action_scale: np.ndarray
    action_clip: float
    decimation: int

    def targets(self, action: np.ndarray) -> np.ndarray:
        """Joint position targets q* = default_pose + action_scale * clip(action)."""
        return self.default_pose + self.action_scale * np.clip(action, -self.action_clip, self.action_clip)


def resolve(actuation: Actuation, joints: Sequence[str], source: str = '') -> PositionActuation:
    """The position actuation of a task for the actuated `joints` (in action order)."""
    if actuation.type != POSITION:
        raise TaskConfigError(f'{source}: actuation.type is {actuation.type!r}, not {POSITION!r}')
    joints = tuple(joints)

    def values(key: str) -> np.ndarray:
        return joint_values(getattr(actuation, key), joints, f'actuation.{key}', source)

    return PositionActuation(joints, values('kp'), values('kd'), values('default_pose'), values('torque_limit'),
                             values('action_scale'), actuation.action_clip, actuation.decimation)


def position_command(task: TaskSpec | str, joints: Sequence[str]) -> PositionActuation:
    """What a controller sending joint position targets needs of `task` (a name or a spec), in
    `joints` order: its default pose and action scale, so that target = default_pose + action_scale
    * action. Refused when the task is not position-actuated."""
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    if spec.actuation.type != POSITION:
        raise TaskConfigError(f'task {spec.name!r} has {spec.actuation.type} actuation; position commands need a '
                              f'task with actuation.type {POSITION} (its default pose and action scale)')
    return resolve(spec.actuation, joints, spec.source)
