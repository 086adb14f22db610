"""The observation and action contract of a policy: named observation terms with scales, offsets,
clips and a history, the joint order, and the PD actuation it was trained with.

A policy trained in Isaac Lab, mjlab, robot_lab or legged_gym does not read raw simulator state: it
reads a list of *terms* (base angular velocity x 0.25, projected gravity, the velocity command,
joint positions minus the default pose, joint velocities x 0.05, its own last action, ...), each
possibly stacked over N steps, and its action is `offset + scale * action`, tracked by PD (kp, kd)
every physics step. This module is the one definition of that contract:

- `TERMS`: the term kinds, their elements and where each comes from (the simulator's true state or
  a robot's sensors);
- `ObsTerm`, `ObsGroup`: an ordered list of terms with scale, offset, clip and history, and the
  stacking order of the history (term-major as Isaac Lab / mjlab flatten it, frame-major as
  legged_gym / rl_sar stack whole observations);
- `PolicyContract`: a group plus the policy's joint order, default pose, stiffness, damping,
  action scale and offset, and its period;
- `TermObsBuilder`: computes a group's vector from raw quantities (`RAW_*`), keeping each term's
  history; the simulator (teacher observation) and every other role call it, so training and
  deployment cannot disagree on order, scale or stacking.

Each term's value is `clip(raw - offset, low, high) * scale`, Isaac Lab's order (clip, then scale).
No mujoco, torch or rclpy here.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill_ros.observation import COMMAND_ELEMENTS, QUATERNION_XYZW, XYZ, Field, ObsSpec


class ContractError(ValueError):
    """A contract (a task's observation terms, or a policy's file) that is incomplete or contradicts
    itself or the task it is used with. The message names the key and the file."""


# Raw quantities a term is computed from (`TermObsBuilder.build` takes them by these names).
RAW_BASE_LIN_VEL = 'base_lin_vel'          # base frame, m/s (simulator only)
RAW_BASE_ANG_VEL = 'base_ang_vel'          # base frame, rad/s (a robot: the IMU gyro)
RAW_PROJECTED_GRAVITY = 'projected_gravity'  # unit gravity in the base frame (a robot: from the IMU orientation)
RAW_COMMAND = 'velocity_command'           # (vx, vy, yaw_rate), what cmd_vel gives
RAW_JOINT_POS = 'joint_pos'                # rad, in the builder's joint order
RAW_JOINT_VEL = 'joint_vel'                # rad/s, in the builder's joint order
RAW_LAST_ACTION = 'last_action'            # the policy's previous action as it was output (before scale)
RAW_CONTACT_FORCES = 'contact_forces'      # N, per contact body (fx, fy, fz) (simulator only)
RAW_DYNAMICS = 'dynamics'                  # this episode's randomized dynamics (simulator only)
RAW_BASE_HEIGHT = 'base_height'            # m above the floor (simulator only)
RAW_SAMPLE_AGE = 'sample_age'              # s since the sensor sample was taken
RAW_IMU_ANGULAR_VELOCITY = 'imu_angular_velocity'        # rad/s, the IMU's frame (sensor_msgs/Imu)
RAW_IMU_LINEAR_ACCELERATION = 'imu_linear_acceleration'  # m/s^2, the IMU's frame
RAW_IMU_ORIENTATION = 'imu_orientation'                  # unit quaternion x, y, z, w (sensor_msgs/Imu order)


@dataclass(frozen=True)
class TermKind:
    """What a term is: its raw quantity, whether it is relative to the default pose, its elements
    ('xyz', 'command', 'joints', 'contacts', 'dynamics' or 'one'), and whether a robot's sensors give it."""

    raw: str
    elements: str | tuple[str, ...]   # a kind, or the element names themselves
    sensors: str            # where a robot gets it ('' = only a simulator knows it)
    relative: bool = False  # joint_pos_rel / joint_vel_rel: minus the default pose / zero velocity
    description: str = ''


TERMS: dict[str, TermKind] = {
    'base_lin_vel': TermKind(RAW_BASE_LIN_VEL, 'xyz', '', description='base linear velocity, base frame (m/s)'),
    'base_ang_vel': TermKind(RAW_BASE_ANG_VEL, 'xyz', 'imu angular_velocity',
                             description='base angular velocity, base frame (rad/s)'),
    'projected_gravity': TermKind(RAW_PROJECTED_GRAVITY, 'xyz', 'imu orientation',
                                  description='unit gravity vector in the base frame'),
    'velocity_command': TermKind(RAW_COMMAND, 'command', 'cmd_vel', description='commanded vx, vy, yaw rate'),
    'joint_pos': TermKind(RAW_JOINT_POS, 'joints', 'joint_states position', description='joint positions (rad)'),
    'joint_pos_rel': TermKind(RAW_JOINT_POS, 'joints', 'joint_states position', relative=True,
                              description='joint positions minus the default pose (rad)'),
    'joint_vel': TermKind(RAW_JOINT_VEL, 'joints', 'joint_states velocity', description='joint velocities (rad/s)'),
    'joint_vel_rel': TermKind(RAW_JOINT_VEL, 'joints', 'joint_states velocity', relative=True,
                              description='joint velocities minus the default (zero) velocity (rad/s)'),
    'last_action': TermKind(RAW_LAST_ACTION, 'actions', 'the controller\'s own previous output',
                            description='the previous action, as output'),
    'contact_forces': TermKind(RAW_CONTACT_FORCES, 'contacts', '', description='contact force per body (N)'),
    'dynamics': TermKind(RAW_DYNAMICS, 'dynamics', '', description='randomized dynamics parameters'),
    'base_height': TermKind(RAW_BASE_HEIGHT, ('m',), '', description='base height (m)'),
    'sample_age': TermKind(RAW_SAMPLE_AGE, ('s',), 'now - joint_states header stamp',
                           description='age of the sensor sample (s)'),
    'imu_angular_velocity': TermKind(RAW_IMU_ANGULAR_VELOCITY, 'xyz', 'imu angular_velocity',
                                     description='IMU gyro, IMU frame (rad/s)'),
    'imu_linear_acceleration': TermKind(RAW_IMU_LINEAR_ACCELERATION, 'xyz', 'imu linear_acceleration',
                                        description='IMU accelerometer, IMU frame (m/s^2)'),
    'imu_orientation': TermKind(RAW_IMU_ORIENTATION, 'quat', 'imu orientation',
                                description='IMU orientation quaternion (x, y, z, w)'),
}
# The sensor fields of observation.SensorObsBuilder are terms at scale 1 (what a student reads).
SENSOR_FIELD_TERMS = {'joint_position': 'joint_pos', 'joint_velocity': 'joint_vel',
                      'imu_angular_velocity': 'imu_angular_velocity',
                      'imu_linear_acceleration': 'imu_linear_acceleration', 'imu_orientation': 'imu_orientation',
                      'command': 'velocity_command', 'sample_age': 'sample_age'}
TERM_MAJOR, FRAME_MAJOR = 'term_major', 'frame_major'
HISTORY_LAYOUTS = (TERM_MAJOR, FRAME_MAJOR)


@dataclass(frozen=True)
class ObsTerm:
    """One observation term: `clip(raw - offset, *clip) * scale`, stacked over `history` steps.
    `scale` and `offset` hold one value per element (a number in a file is broadcast)."""

    name: str
    scale: tuple[float, ...] = ()
    offset: tuple[float, ...] = ()
    clip: tuple[float, float] | None = None
    history: int = 1

    def to_json(self) -> dict[str, Any]:
        return {'name': self.name, 'scale': list(self.scale), 'offset': list(self.offset),
                'clip': None if self.clip is None else list(self.clip), 'history': self.history}


@dataclass(frozen=True)
class ObsGroup:
    """An ordered list of terms over `joints` (the policy's joint order), with its history layout.
    `actions` names the last action's elements (default: `joints`)."""

    terms: tuple[ObsTerm, ...]
    joints: tuple[str, ...]
    history_layout: str = TERM_MAJOR
    contact_bodies: tuple[str, ...] = ()
    dynamics: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    @property
    def action_names(self) -> tuple[str, ...]:
        return self.actions or self.joints

    def to_json(self) -> dict[str, Any]:
        return {'terms': [t.to_json() for t in self.terms], 'joints': list(self.joints),
                'history_layout': self.history_layout, 'contact_bodies': list(self.contact_bodies),
                'dynamics': list(self.dynamics), **({'actions': list(self.actions)} if self.actions else {})}

    @classmethod
    def from_json(cls, data: Any, source: str = 'observation') -> ObsGroup:
        """A group as `to_json` writes it (and as a task YAML's `observation.teacher` holds it, where
        scale/offset may be numbers and clip/history may be left out)."""
        if not isinstance(data, Mapping):
            raise ContractError(f'{source}: expected a mapping with terms and joints, got {data!r}')
        unknown = set(data) - {'terms', 'joints', 'history_layout', 'contact_bodies', 'dynamics', 'actions'}
        if unknown:
            raise ContractError(f'{source}: unknown keys {sorted(unknown)}; expected terms, joints, history_layout, '
                                f'contact_bodies, dynamics, actions')
        joints = _names(data.get('joints'), f'{source}.joints')
        terms_data = data.get('terms')
        if not isinstance(terms_data, list) or not terms_data:
            raise ContractError(f'{source}.terms: expected a non-empty list of terms, got {terms_data!r}')
        layout = data.get('history_layout', TERM_MAJOR)
        if layout not in HISTORY_LAYOUTS:
            raise ContractError(f'{source}.history_layout: expected one of {list(HISTORY_LAYOUTS)}, got {layout!r}')
        contact_bodies = _names(data.get('contact_bodies', []), f'{source}.contact_bodies', empty=True)
        dynamics = _names(data.get('dynamics', []), f'{source}.dynamics', empty=True)
        actions = _names(data.get('actions', []), f'{source}.actions', empty=True)
        sizes = {'joints': len(joints), 'contacts': 3 * len(contact_bodies), 'dynamics': len(dynamics),
                 'actions': len(actions or joints)}
        terms = []
        for i, t in enumerate(terms_data):
            where = f'{source}.terms[{i}]'
            if isinstance(t, str):
                t = {'name': t}
            if not isinstance(t, Mapping) or 'name' not in t:
                raise ContractError(f'{where}: expected a term name or a mapping with "name", got {t!r}')
            unknown = set(t) - {'name', 'scale', 'offset', 'clip', 'history'}
            if unknown:
                raise ContractError(f'{where}: unknown keys {sorted(unknown)}; expected name, scale, offset, clip, '
                                    f'history')
            terms.append(make_term(t['name'], t.get('scale', 1.0), t.get('offset', 0.0), t.get('clip'),
                                   t.get('history', 1), sizes, where))
        group = cls(tuple(terms), joints, layout, contact_bodies, dynamics, actions)
        group.check(source)
        return group

    def check(self, source: str) -> None:
        names = [t.name for t in self.terms]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ContractError(f'{source}: terms {twice} appear twice; each term once')
        if self.history_layout == FRAME_MAJOR and len({t.history for t in self.terms}) > 1:
            raise ContractError(f'{source}: a frame-major history stacks whole observations, so every term needs the '
                                f'same history; got {dict((t.name, t.history) for t in self.terms)}')

    def element_count(self, term: ObsTerm) -> int:
        return len(self.elements(term))

    def elements(self, term: ObsTerm) -> tuple[str, ...]:
        kind = TERMS[term.name].elements
        if isinstance(kind, tuple):
            return kind
        if kind == 'actions':
            return self.action_names
        if kind == 'xyz':
            return XYZ
        if kind == 'command':
            return COMMAND_ELEMENTS
        if kind == 'quat':
            return QUATERNION_XYZW
        if kind == 'joints':
            return self.joints
        if kind == 'contacts':
            return tuple(f'{b}/{a}' for b in self.contact_bodies for a in ('fx', 'fy', 'fz'))
        if kind == 'dynamics':
            return self.dynamics
        raise AssertionError(f'unknown element kind {kind!r}')

    @property
    def history(self) -> int:
        return max(t.history for t in self.terms)

    def spec(self) -> ObsSpec:
        """The named layout of the group's vector. History 1: one field per term. Term-major: each
        term's field holds its steps oldest first (`element@t-2`, `element@t-1`, `element`).
        Frame-major: one field per step and term, `term@t-k`, oldest step first."""
        def at(k: int) -> str:
            return '' if k == 0 else f'@t-{k}'

        if self.history_layout == TERM_MAJOR:
            return ObsSpec(Field(t.name, tuple(f'{e}{at(k)}' for k in range(t.history - 1, -1, -1)
                                               for e in self.elements(t))) for t in self.terms)
        return ObsSpec(Field(f'{t.name}{at(k)}', self.elements(t)) for k in range(self.history - 1, -1, -1)
                       for t in self.terms)

    def needs(self) -> set[str]:
        """The raw quantities the group reads."""
        return {TERMS[t.name].raw for t in self.terms}

    def privileged_terms(self) -> list[str]:
        """Terms that only a simulator can give (no sensor reads them)."""
        return [t.name for t in self.terms if not TERMS[t.name].sensors]


def group_difference(expected: ObsGroup, got: ObsGroup) -> str | None:
    """The first difference between two groups, in words (None: the same contract): joint order, term
    order, then each term's scale, offset, clip and history, then the history layout."""
    if tuple(expected.joints) != tuple(got.joints):
        return f'joint order differs: expected {list(expected.joints)}, got {list(got.joints)}'
    a, b = [t.name for t in expected.terms], [t.name for t in got.terms]
    if a != b:
        return f'terms differ: expected {a}, got {b}'
    for te, tg in zip(expected.terms, got.terms):
        for key in ('scale', 'offset', 'clip', 'history'):
            ve, vg = getattr(te, key), getattr(tg, key)
            if ve != vg and not (key in ('scale', 'offset') and np.allclose(ve, vg, rtol=1e-6, atol=1e-9)):
                return f'term {te.name!r}: {key} expected {ve}, got {vg}'
    if expected.history_layout != got.history_layout:
        return f'history layout expected {expected.history_layout}, got {got.history_layout}'
    for key in ('contact_bodies', 'dynamics', 'action_names'):
        if getattr(expected, key) != getattr(got, key):
            return f'{key} expected {list(getattr(expected, key))}, got {list(getattr(got, key))}'
    return None


def _names(value: Any, where: str, empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value) \
            or (not value and not empty):
        raise ContractError(f'{where}: expected a {"" if empty else "non-empty "}list of names, got {value!r}')
    if len(set(value)) != len(value):
        raise ContractError(f'{where}: duplicate names {sorted({v for v in value if list(value).count(v) > 1})}')
    return tuple(value)


def _vector(value: Any, size: int, where: str, what: str) -> tuple[float, ...]:
    """A number (broadcast) or exactly `size` finite numbers."""
    if isinstance(value, bool) or value is None:
        raise ContractError(f'{where}: {what} must be a number or {size} numbers, got {value!r}')
    if isinstance(value, (int, float)):
        value = [value] * size
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in value):
        raise ContractError(f'{where}: {what} must be a number or {size} numbers, got {value!r}')
    if len(value) != size:
        raise ContractError(f'{where}: {what} has {len(value)} values, expected {size} (one per element)')
    if not all(math.isfinite(v) for v in value):
        raise ContractError(f'{where}: {what} must be finite, got {list(value)}')
    return tuple(float(v) for v in value)


def make_term(name: Any, scale: Any = 1.0, offset: Any = 0.0, clip: Any = None, history: Any = 1,
              sizes: Mapping[str, int] | None = None, where: str = 'term') -> ObsTerm:
    """A checked `ObsTerm`: a known name, one scale and offset per element, clip [low, high] with low <
    high, history >= 1. `sizes` gives the element count of the joint/contact/dynamics kinds."""
    if name not in TERMS:
        raise ContractError(f'{where}: unknown observation term {name!r}; known terms are {list(TERMS)}')
    kind = TERMS[name].elements
    size = len(kind) if isinstance(kind, tuple) else \
        {'xyz': 3, 'command': 3, 'quat': 4}.get(kind) or (sizes or {}).get(kind, 0)
    if size == 0:
        raise ContractError(f'{where}: term {name!r} needs {kind} to be named (none given)')
    scale_v = _vector(scale, size, where, f'{name}.scale')
    offset_v = _vector(offset, size, where, f'{name}.offset')
    clip_v = None
    if clip is not None:
        if (not isinstance(clip, (list, tuple)) or len(clip) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in clip)
                or not clip[0] < clip[1]):
            raise ContractError(f'{where}: {name}.clip must be [low, high] with low < high (or null), got {clip!r}')
        clip_v = (float(clip[0]), float(clip[1]))
    if isinstance(history, bool) or not isinstance(history, int) or history < 1:
        raise ContractError(f'{where}: {name}.history must be an integer >= 1, got {history!r}')
    return ObsTerm(name, scale_v, offset_v, clip_v, history)


@dataclass(frozen=True)
class PolicyContract:
    """Everything a deployment needs to feed a policy and apply its action, in the policy's joint order.
    The action goes to joint targets `action_offset + action_scale * clip(action)`, tracked by PD
    (`stiffness`, `damping`) at the physics rate; the policy acts every `step_dt` seconds."""

    observation: ObsGroup
    joints: tuple[str, ...]
    default_joint_pos: tuple[float, ...]
    action_scale: tuple[float, ...]
    action_offset: tuple[float, ...]
    stiffness: tuple[float, ...] | None = None
    damping: tuple[float, ...] | None = None
    action_clip: tuple[float, float] | None = None
    step_dt: float | None = None
    command_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    source: str = ''

    def to_json(self) -> dict[str, Any]:
        def lst(v):
            return None if v is None else list(v)

        return {'format': CONTRACT_FORMAT, 'joints': list(self.joints),
                'default_joint_pos': list(self.default_joint_pos),
                'stiffness': lst(self.stiffness), 'damping': lst(self.damping),
                'action': {'scale': list(self.action_scale), 'offset': list(self.action_offset),
                           'clip': lst(self.action_clip)},
                'step_dt': self.step_dt, 'command_ranges': {k: list(v) for k, v in self.command_ranges.items()},
                'observation': self.observation.to_json()}

    @classmethod
    def from_json(cls, data: Any, source: str = 'contract') -> PolicyContract:
        """The contract as `to_json` (and `distill-ros export`) writes it."""
        if not isinstance(data, Mapping):
            raise ContractError(f'{source}: expected a mapping, got {type(data).__name__}')
        if data.get('format') != CONTRACT_FORMAT:
            raise ContractError(f'{source}: format is {data.get("format")!r}, expected {CONTRACT_FORMAT!r}')
        for key in ('joints', 'default_joint_pos', 'action', 'observation'):
            if key not in data:
                raise ContractError(f'{source}: missing key {key!r}')
        joints = _names(data['joints'], f'{source}: joints')
        n = len(joints)
        action = data['action']
        if not isinstance(action, Mapping) or 'scale' not in action:
            raise ContractError(f'{source}: action must be a mapping with scale (and offset, clip), got {action!r}')

        def opt(key: str, value: Any) -> tuple[float, ...] | None:
            return None if value is None else _vector(value, n, source, key)

        default = _vector(data['default_joint_pos'], n, source, 'default_joint_pos')
        clip = action.get('clip')
        if clip is not None and (not isinstance(clip, list) or len(clip) != 2 or not clip[0] < clip[1]):
            raise ContractError(f'{source}: action.clip must be [low, high] or null, got {clip!r}')
        ranges = data.get('command_ranges') or {}
        contract = cls(
            observation=ObsGroup.from_json(data['observation'], f'{source}: observation'),
            joints=joints, default_joint_pos=default,
            action_scale=_vector(action['scale'], n, source, 'action.scale'),
            action_offset=_vector(action.get('offset', list(default)), n, source, 'action.offset'),
            stiffness=opt('stiffness', data.get('stiffness')), damping=opt('damping', data.get('damping')),
            action_clip=None if clip is None else (float(clip[0]), float(clip[1])),
            step_dt=_step_dt(data.get('step_dt'), source),
            command_ranges={k: (float(v[0]), float(v[1])) for k, v in ranges.items()}, source=source)
        contract.check()
        return contract

    def check(self) -> None:
        """The contract agrees with itself: the last action the observation reads is the action's joints."""
        if 'last_action' in [t.name for t in self.observation.terms] and \
                tuple(self.observation.action_names) != tuple(self.joints):
            raise ContractError(f'{self.source}: the observation\'s last action is over '
                                f'{list(self.observation.action_names)}, the action over {list(self.joints)}')

    def by_joint(self, values: Sequence[float] | None) -> dict[str, float] | None:
        return None if values is None else dict(zip(self.joints, (float(v) for v in values)))


CONTRACT_FORMAT = 'distill_ros.contract/1'


def _step_dt(value: Any, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10:
        raise ContractError(f'{source}: step_dt must be the policy period in seconds (> 0), got {value!r}')
    return float(value)


def sensor_group(spec: ObsSpec, history: int = 1, past_actions: bool = False,
                 action_names: Sequence[str] = ()) -> ObsGroup:
    """A student's input as a term group: its sensor fields at scale 1, each step followed by the
    previous action (`past_actions`), `history` steps stacked oldest first (frame-major: the window
    observation.HistoryBuffer builds)."""
    terms = []
    joints: tuple[str, ...] = ()
    for f in spec.fields:
        if f.name not in SENSOR_FIELD_TERMS:
            raise ContractError(f'sensor field {f.name!r} has no term; sensor fields are {list(SENSOR_FIELD_TERMS)}')
        if f.name in ('joint_position', 'joint_velocity'):
            joints = f.elements
        terms.append(ObsTerm(SENSOR_FIELD_TERMS[f.name], (1.0,) * f.size, (0.0,) * f.size, None, history))
    actions = tuple(action_names)
    if past_actions:
        terms.append(ObsTerm('last_action', (1.0,) * len(actions), (0.0,) * len(actions), None, history))
    group = ObsGroup(tuple(terms), joints, FRAME_MAJOR, actions=actions if actions != joints else ())
    group.spec().check_matches(_stacked(spec, history, past_actions, actions), 'student contract')
    return group


def _stacked(spec: ObsSpec, history: int, past_actions: bool, actions: tuple[str, ...]) -> ObsSpec:
    """The frame-major layout of a student's window, named as `ObsGroup.spec` names it."""
    fields = []
    for k in range(history - 1, -1, -1):
        at = '' if k == 0 else f'@t-{k}'
        fields += [Field(SENSOR_FIELD_TERMS[f.name] + at, f.elements) for f in spec.fields]
        if past_actions:
            fields.append(Field('last_action' + at, actions))
    return ObsSpec(fields)


# ---------------------------------------------------------------- raw quantities from a base pose
def quat_rotate_inverse(quat_wxyz: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """`vector` (world frame) expressed in the frame of orientation `quat_wxyz` (w, x, y, z; MuJoCo's order)."""
    w, x, y, z = quat_wxyz
    q = np.array([x, y, z])
    v = np.asarray(vector, dtype=np.float64)
    return v * (2.0 * w * w - 1.0) - np.cross(q, v) * (2.0 * w) + q * (2.0 * q.dot(v))


GRAVITY_WORLD = np.array([0.0, 0.0, -1.0])


def projected_gravity(quat_wxyz: np.ndarray) -> np.ndarray:
    """The unit gravity vector in the base frame (Isaac Lab's `projected_gravity`): (0, 0, -1) upright."""
    return quat_rotate_inverse(quat_wxyz, GRAVITY_WORLD)


def xyzw_to_wxyz(quat_xyzw: Sequence[float]) -> np.ndarray:
    x, y, z, w = quat_xyzw
    return np.array([w, x, y, z], dtype=np.float64)


# ---------------------------------------------------------------- the one builder
class TermObsBuilder:
    """A group's observation vector from raw quantities, keeping each term's history.

    `reset()` at an episode's start; then `build(raw)` once per policy step, with `raw` holding every
    quantity of `group.needs()` (`RAW_*` names; joint quantities in the group's joint order). Before an
    episode's first step, a term's history repeats its first value (as Isaac Lab's CircularBuffer fills
    on its first push). `default_pose` (in the group's joint order) is what `joint_pos_rel` subtracts.
    """

    def __init__(self, group: ObsGroup, default_pose: Sequence[float] | None = None):
        self.group = group
        self.spec = group.spec()
        self.size = self.spec.size
        n = len(group.joints)
        needs_default = any(TERMS[t.name].relative and TERMS[t.name].raw == RAW_JOINT_POS for t in group.terms)
        if needs_default and default_pose is None:
            raise ContractError('joint_pos_rel needs the default pose of the joints; none was given')
        self.default_pose = np.zeros(n) if default_pose is None else np.asarray(default_pose, dtype=np.float64)
        if self.default_pose.shape != (n,):
            raise ContractError(f'default pose has {self.default_pose.size} values, expected {n} (joints '
                                f'{list(group.joints)})')
        self._terms = []
        for t in group.terms:
            kind = TERMS[t.name]
            offset = np.asarray(t.offset, dtype=np.float64)
            if kind.relative and kind.raw == RAW_JOINT_POS:
                offset = offset + self.default_pose
            lo, hi = t.clip if t.clip is not None else (-np.inf, np.inf)
            size = group.element_count(t)
            self._terms.append((kind.raw, offset, np.asarray(t.scale, dtype=np.float64), lo, hi, size, t.history))
        self._history = [np.zeros((h, size)) for (_, _, _, _, _, size, h) in self._terms]
        self._started = False

    def reset(self) -> None:
        self._started = False

    def term_values(self, raw: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """This step's value of each term (no history), as the policy would see it at history 1."""
        values = []
        for (name, offset, scale, lo, hi, size, _), t in zip(self._terms, self.group.terms):
            try:
                value = np.asarray(raw[name], dtype=np.float64).reshape(-1)
            except KeyError:
                raise ContractError(f'observation term {t.name!r} needs {name!r}, which was not given '
                                    f'(given: {sorted(raw)})') from None
            if value.size != size:
                raise ContractError(f'observation term {t.name!r}: {name!r} has {value.size} values, expected {size}')
            values.append(np.clip(value - offset, lo, hi) * scale)
        return values

    def build(self, raw: Mapping[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        values = self.term_values(raw)
        for buf, value in zip(self._history, values):
            if not self._started:
                buf[:] = value
            else:
                buf[:-1] = buf[1:]
                buf[-1] = value
        self._started = True
        if out is None:
            out = np.empty(self.size, dtype=np.float64)
        if self.group.history_layout == TERM_MAJOR:
            np.concatenate([buf.reshape(-1) for buf in self._history], out=out)
        else:
            h = self.group.history
            np.concatenate([self._history[i][k] for k in range(h) for i in range(len(self._history))], out=out)
        return out
