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


def deployment_record(position: PositionActuation | None, rate_hz: float, action_names: Sequence[str]) -> dict:
    """What a controller needs of the task a policy was trained on, stored in its checkpoint
    (`deployment`), so that a robot needs neither the task YAML nor a simulator: the policy rate, the
    action names and, for position actuation, the default pose, action scale and clip and the PD gains,
    by joint."""
    record: dict = {'policy_rate_hz': float(rate_hz), 'actions': list(action_names)}
    if position is not None:
        scale = np.broadcast_to(np.asarray(position.action_scale, dtype=np.float64), (len(position.joints),))
        record['actuation'] = {
            'type': POSITION, 'joints': list(position.joints), 'default_pose': position.default_pose.tolist(),
            'action_scale': scale.tolist(), 'action_clip': float(position.action_clip),
            'kp': position.kp.tolist(), 'kd': position.kd.tolist(),
            'torque_limit': [float(v) if np.isfinite(v) else None for v in position.torque_limit],
            'decimation': int(position.decimation)}
    return record


def position_from_record(record: dict, joints: Sequence[str], source: str = 'checkpoint') -> PositionActuation:
    """The position actuation a `deployment_record` holds, in `joints` order (matched by name)."""
    actuation = (record or {}).get('actuation')
    if not isinstance(actuation, dict) or actuation.get('type') != POSITION:
        raise TaskConfigError(f'{source}: its deployment record has no position actuation (a student of a '
                              f'torque-actuated task, or a checkpoint written before deployment records)')
    try:
        names = list(actuation['joints'])
        index = [names.index(j) for j in joints]
    except ValueError:
        missing = [j for j in joints if j not in actuation['joints']]
        raise TaskConfigError(f'{source}: deployment actuation has no joints {missing}; it has {names}') from None
    except (KeyError, TypeError) as exc:
        raise TaskConfigError(f'{source}: malformed deployment actuation ({exc})') from None

    def values(key: str) -> np.ndarray:
        raw = actuation[key]
        return np.array([np.inf if raw[i] is None else float(raw[i]) for i in index])

    return PositionActuation(tuple(joints), values('kp'), values('kd'), values('default_pose'), values('torque_limit'),
                             values('action_scale'), float(actuation['action_clip']), int(actuation['decimation']))


def position_command(task: TaskSpec | str, joints: Sequence[str]) -> PositionActuation:
    """What a controller sending joint position targets needs of `task` (a name or a spec), in
    `joints` order: its default pose and action scale, so that target = default_pose + action_scale
    * action. Refused when the task is not position-actuated."""
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    if spec.actuation.type != POSITION:
        raise TaskConfigError(f'task {spec.name!r} has {spec.actuation.type} actuation; position commands need a '
                              f'task with actuation.type {POSITION} (its default pose and action scale)')
    return resolve(spec.actuation, joints, spec.source)
