"""Named observation layouts and the one sensor-observation builder every role shares.

A policy's input is a flat float vector, but people and nodes work with named quantities: joint
positions by joint name, IMU angular velocity, a dynamics parameter. `ObsSpec` is the bridge: an
ordered list of fields, each with element names, that flattens and slices consistently and is
stored with datasets and checkpoints so the layout can be checked wherever a vector is used.

`SensorReading` is what a robot driver gives (joint encoders by name, one IMU); `SensorObsBuilder`
turns a reading into the `sensor_obs` vector. The simulator, the recorder, DAgger and the student
controller all call the same builder, so the training-time and run-time observations cannot drift
apart in term order, joint order or layout.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Field:
    """One named block of an observation vector: `name` and the names of its elements."""

    name: str
    elements: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.elements)

    def element_names(self) -> list[str]:
        """Fully qualified names, `field/element`, as used on named-vector topics."""
        return [f'{self.name}/{element}' for element in self.elements]


class ObsSpec:
    """An ordered, named layout of a flat observation vector."""

    def __init__(self, fields: Iterable[Field]):
        self.fields: tuple[Field, ...] = tuple(fields)
        names = [f.name for f in self.fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f'observation spec has duplicate field names: {duplicates}')
        self._slices: dict[str, slice] = {}
        start = 0
        for f in self.fields:
            self._slices[f.name] = slice(start, start + f.size)
            start += f.size
        self.size = start

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObsSpec) and self.fields == other.fields

    def __repr__(self) -> str:
        inner = ', '.join(f'{f.name}[{f.size}]' for f in self.fields)
        return f'ObsSpec({inner})'

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def element_names(self) -> list[str]:
        """Every element's `field/element` name, in vector order."""
        return [name for f in self.fields for name in f.element_names()]

    def slice(self, name: str) -> slice:
        try:
            return self._slices[name]
        except KeyError:
            raise KeyError(f'no field {name!r} in {self!r}') from None

    def get(self, vector: np.ndarray, name: str) -> np.ndarray:
        """The block of `vector` (or of the last axis of a batch) that holds field `name`."""
        return vector[..., self.slice(name)]

    def flatten(self, values: Mapping[str, Sequence[float] | np.ndarray], out: np.ndarray | None = None
                ) -> np.ndarray:
        """Pack named blocks into one vector; every field must be present with the right size."""
        if out is None:
            out = np.empty(self.size, dtype=np.float64)
        for f in self.fields:
            if f.name not in values:
                raise KeyError(f'missing observation field {f.name!r}; expected fields {self.names}')
            block = np.asarray(values[f.name], dtype=np.float64).reshape(-1)
            if block.size != f.size:
                raise ValueError(f'observation field {f.name!r} has {block.size} values, expected {f.size}')
            out[self._slices[f.name]] = block
        return out

    def unflatten(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        return {f.name: vector[..., self._slices[f.name]] for f in self.fields}

    def to_json(self) -> list[dict]:
        return [{'name': f.name, 'elements': list(f.elements)} for f in self.fields]

    @classmethod
    def from_json(cls, data: Sequence[Mapping]) -> ObsSpec:
        try:
            return cls(Field(str(d['name']), tuple(str(e) for e in d['elements'])) for d in data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f'invalid observation spec {data!r}: expected a list of '
                             f'{{"name": str, "elements": [str, ...]}}') from exc

    def check_matches(self, other: ObsSpec, what: str = 'observation') -> None:
        """Raise a ValueError naming the first difference between two layouts."""
        if self == other:
            return
        mine, theirs = self.element_names(), other.element_names()
        for i, (a, b) in enumerate(zip(mine, theirs)):
            if a != b:
                raise ValueError(f'{what}: layout mismatch at index {i}: expected {a!r}, got {b!r} '
                                 f'(expected {self!r}, got {other!r})')
        raise ValueError(f'{what}: layout mismatch: expected {len(mine)} values {self!r}, '
                         f'got {len(theirs)} values {other!r}')


# Sensor-observation field names. Nodes translate sensor_msgs messages into these.
JOINT_POSITION = 'joint_position'
JOINT_VELOCITY = 'joint_velocity'
IMU_ANGULAR_VELOCITY = 'imu_angular_velocity'
IMU_LINEAR_ACCELERATION = 'imu_linear_acceleration'
IMU_ORIENTATION = 'imu_orientation'
XYZ = ('x', 'y', 'z')
QUATERNION_XYZW = ('x', 'y', 'z', 'w')  # sensor_msgs/Imu order
# A task's velocity command (forward m/s, lateral m/s, yaw rate rad/s), as geometry_msgs/Twist on
# cmd_vel gives it (linear.x, linear.y, angular.z); the last sensor field of tasks that have one.
COMMAND = 'command'
COMMAND_ELEMENTS = ('vx', 'vy', 'yaw_rate')
# The age of the sensor sample the observation was built from, in seconds: the sensors' latency as
# the policy can know it (now - the JointState's header stamp on the robot; the drawn latency in the
# simulator). A task opts in with `sensors.sample_age: true`; the field then closes the vector.
SAMPLE_AGE = 'sample_age'
SAMPLE_AGE_ELEMENTS = ('s',)


class SensorMessageError(ValueError):
    """A sensor message that gives no observation: a bad sample, dropped and counted by its caller.
    `stream` says which message it was: 'joints' (JointState) or 'imu'."""

    def __init__(self, message: str, stream: str = 'joints'):
        super().__init__(message)
        self.stream = stream


class MalformedMessage(SensorMessageError):
    """The message contradicts itself: arrays whose lengths differ from `name[]`, duplicate names,
    non-finite values, covariance arrays of the wrong size."""


class SensorMismatch(SensorMessageError):
    """A well-formed message that lacks what the observation reads (a joint, velocities, the IMU):
    the robot or bag and the policy's task disagree."""


def check_named_arrays(names: Sequence[str], arrays: Mapping[str, Sequence[float]], optional: Iterable[str] = (),
                       what: str = 'message') -> None:
    """Refuse a named-vector message whose arrays do not match `name[]` one to one.

    Each array of `arrays` must hold exactly one value per name; those in `optional` may also be
    empty (sensor_msgs/JointState allows empty velocity and effort). Names must be unique, or
    mapping by name would be ambiguous."""
    n = len(names)
    optional = set(optional)
    wrong = {key: len(values) for key, values in arrays.items()
             if len(values) != n and not (key in optional and len(values) == 0)}
    if wrong:
        found = ', '.join(f'{key} {length}' for key, length in wrong.items())
        may_be_empty = [key for key in arrays if key in optional]
        expected = f'{n} each' + (f' ({" and ".join(may_be_empty)} may also be empty)' if may_be_empty else '')
        raise MalformedMessage(f'malformed {what}: {n} names but {found} values; expected {expected}')
    if len(set(names)) != n:
        duplicates = sorted({x for x in names if list(names).count(x) > 1})
        raise MalformedMessage(f'malformed {what}: duplicate names {duplicates}; expected unique names')


def check_joint_state(msg) -> None:
    """sensor_msgs/JointState's own rule: position, velocity and effort each hold one value per
    name, or (velocity, effort) none."""
    names = msg.name
    n, effort = len(names), getattr(msg, 'effort', ())
    if len(msg.position) == n and len(msg.velocity) in (0, n) and len(effort) in (0, n) and len(set(names)) == n:
        return  # the common case, without building the report below
    check_named_arrays(names, {'position': msg.position, 'velocity': msg.velocity, 'effort': effort},
                       optional=('velocity', 'effort'), what='JointState')


_IMU_COVARIANCES = ('orientation_covariance', 'angular_velocity_covariance', 'linear_acceleration_covariance')


def check_imu(msg) -> None:
    """The Imu fields an observation reads are finite; covariances, when present, hold 9 values."""
    for field_name in _IMU_COVARIANCES:
        cov = getattr(msg, field_name, None)
        if cov is not None and len(cov) != 9:
            raise MalformedMessage(f'malformed Imu: {field_name} has {len(cov)} values; expected 9')
    o, g, a = msg.orientation, msg.angular_velocity, msg.linear_acceleration
    values = (o.x, o.y, o.z, o.w, g.x, g.y, g.z, a.x, a.y, a.z)
    if not all(math.isfinite(v) for v in values):
        raise MalformedMessage(f'malformed Imu: NaN or Inf in orientation/angular_velocity/linear_acceleration '
                               f'{[float(v) for v in values]}')


@dataclass
class SensorReading:
    """What a robot driver reports at one instant: joint encoders by name and one IMU.

    Joint dictionaries are keyed by joint name, never by index. The orientation is a unit
    quaternion in (x, y, z, w) order, as in sensor_msgs/Imu.
    """

    joint_position: dict[str, float] = field(default_factory=dict)
    joint_velocity: dict[str, float] = field(default_factory=dict)
    angular_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    linear_acceleration: np.ndarray = field(default_factory=lambda: np.zeros(3))
    orientation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    command: np.ndarray = field(default_factory=lambda: np.zeros(3))   # COMMAND_ELEMENTS order
    sample_age: float = 0.0   # seconds since the joint sample was taken (SAMPLE_AGE)


class SensorObsBuilder:
    """Builds the `sensor_obs` vector from a `SensorReading`, in the order of its `ObsSpec`.

    Joints are looked up by name: a reading whose joints arrive in another order gives the same
    vector; a reading that lacks a joint the spec needs is refused with the joint's name.
    """

    def __init__(self, joints: Sequence[str], joint_velocity: bool, imu: bool, command: bool = False,
                 sample_age: bool = False):
        self.joints = tuple(joints)
        self.has_joint_velocity = joint_velocity
        self.has_imu = imu
        self.has_command = command
        self.has_sample_age = sample_age
        fields = [Field(JOINT_POSITION, self.joints)]
        if joint_velocity:
            fields.append(Field(JOINT_VELOCITY, self.joints))
        if imu:
            fields += [Field(IMU_ANGULAR_VELOCITY, XYZ), Field(IMU_LINEAR_ACCELERATION, XYZ),
                       Field(IMU_ORIENTATION, QUATERNION_XYZW)]
        if command:
            fields.append(Field(COMMAND, COMMAND_ELEMENTS))
        if sample_age:
            fields.append(Field(SAMPLE_AGE, SAMPLE_AGE_ELEMENTS))
        self.spec = ObsSpec(fields)
        n = len(self.joints)
        self._pos = slice(0, n)
        self._vel = slice(n, 2 * n) if joint_velocity else None
        start = 2 * n if joint_velocity else n
        self._imu = slice(start, start + 10) if imu else None
        self._age = self.spec.size - 1 if sample_age else None
        end = self.spec.size - (1 if sample_age else 0)
        self._command = slice(end - len(COMMAND_ELEMENTS), end) if command else None

    @classmethod
    def from_spec(cls, spec: ObsSpec) -> SensorObsBuilder:
        """The builder that produces `spec`; refuses a spec that is not a sensor layout."""
        names = spec.names
        if not names or names[0] != JOINT_POSITION:
            raise ValueError(f'not a sensor observation spec (first field must be {JOINT_POSITION!r}): {spec!r}')
        builder = cls(spec.fields[0].elements, JOINT_VELOCITY in names, IMU_ANGULAR_VELOCITY in names,
                      COMMAND in names, SAMPLE_AGE in names)
        builder.spec.check_matches(spec, 'sensor observation')
        return builder

    @property
    def command_slice(self) -> slice | None:
        """Where the velocity command sits in the vector (None: the spec has none)."""
        return self._command

    @property
    def sample_age_index(self) -> int | None:
        """Where the sample age sits in the vector (None: the spec has none)."""
        return self._age

    def missing_joints(self, available: Iterable[str]) -> list[str]:
        have = set(available)
        return [j for j in self.joints if j not in have]

    def build(self, reading: SensorReading, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty(self.spec.size, dtype=np.float64)
        try:
            out[self._pos] = [reading.joint_position[j] for j in self.joints]
            if self._vel is not None:
                out[self._vel] = [reading.joint_velocity[j] for j in self.joints]
        except KeyError as exc:
            raise SensorMismatch(f'sensor reading lacks joint {exc.args[0]!r}; expected joints {list(self.joints)}'
                                 ) from None
        if self._imu is not None:
            s = self._imu.start
            out[s:s + 3] = reading.angular_velocity
            out[s + 3:s + 6] = reading.linear_acceleration
            out[s + 6:s + 10] = reading.orientation
        if self._command is not None:
            out[self._command] = reading.command
        if self._age is not None:
            out[self._age] = reading.sample_age
        return out

    def _joint_order(self, joints) -> list[int] | None:
        """Indices of the spec's joints in a well-formed JointState (None: already in spec order)."""
        check_joint_state(joints)
        names = joints.name
        if self._vel is not None and len(joints.velocity) != len(names):
            raise SensorMismatch(f'joint_states carries no velocity; expected velocities of {list(self.joints)}')
        if tuple(names) == self.joints:
            return None
        index = {n: i for i, n in enumerate(names)}
        missing = [j for j in self.joints if j not in index]
        if missing:
            raise SensorMismatch(f'sensor reading lacks joint {missing[0]!r} (missing {missing}); expected '
                                 f'joints {list(self.joints)}, the message has {list(names)}')
        return [index[j] for j in self.joints]

    def check_message(self, joints=None, imu=None) -> None:
        """Refuse, as `build_from_messages` would, a JointState and/or Imu that gives no observation
        (so a recorder can drop a bad message when it arrives, before pairing it)."""
        if joints is not None:
            order = self._joint_order(joints)
            arrays = {'position': joints.position, **({'velocity': joints.velocity} if self._vel is not None else {})}
            for key, values in arrays.items():
                values = np.asarray(values, dtype=np.float64)
                if not np.isfinite(values if order is None else values[order]).all():
                    raise MalformedMessage(f'sensor message with NaN or Inf in JointState {key} {values.tolist()}')
        if imu is not None and self._imu is not None:
            try:
                check_imu(imu)
            except MalformedMessage as exc:
                exc.stream = 'imu'
                raise

    def build_from_messages(self, joints, imu=None, out: np.ndarray | None = None,
                            command: Sequence[float] | None = None, sample_age: float | None = None) -> np.ndarray:
        """`build(sensor_reading(joints, imu))` without the intermediate reading: the hot path of
        the recorder, bag replay and the student controller. Joints still map by name; when a
        driver publishes them in the spec's order, the arrays are copied as they are.

        Every message is checked first (`check_joint_state`, `check_imu`): a malformed one raises
        `MalformedMessage`, one that lacks what the spec reads raises `SensorMismatch`; neither
        ever becomes a value of the observation. A spec with a velocity command takes it as `command`
        (vx, vy, yaw_rate: what the node read from cmd_vel, zero after its timeout); one with the sample
        age takes it as `sample_age` (seconds: the time of use minus the JointState's header stamp)."""
        if out is None:
            out = np.empty(self.spec.size, dtype=np.float64)
        order = self._joint_order(joints)
        if order is None:
            out[self._pos] = joints.position
            if self._vel is not None:
                out[self._vel] = joints.velocity
        else:
            out[self._pos] = [joints.position[i] for i in order]
            if self._vel is not None:
                out[self._vel] = [joints.velocity[i] for i in order]
        if self._imu is not None:
            if imu is None:
                raise SensorMismatch('sensor reading lacks the IMU this observation needs', 'imu')
            try:
                check_imu(imu)
            except MalformedMessage as exc:
                exc.stream = 'imu'
                raise
            g, a, o = imu.angular_velocity, imu.linear_acceleration, imu.orientation
            s = self._imu.start
            out[s:s + 10] = (g.x, g.y, g.z, a.x, a.y, a.z, o.x, o.y, o.z, o.w)
        if self._command is not None:
            if command is None:
                raise SensorMismatch(f'this observation needs the velocity command ({COMMAND}: '
                                     f'{list(COMMAND_ELEMENTS)}); none was given', 'command')
            out[self._command] = command
        if self._age is not None:
            if sample_age is None:
                raise SensorMismatch(f'this observation needs the sample age ({SAMPLE_AGE}: seconds since the '
                                     f"joint sample's header stamp); none was given")
            out[self._age] = sample_age
        if not np.isfinite(out).all():
            bad = [name for name, v in zip(self.spec.element_names(), out) if not np.isfinite(v)]
            raise MalformedMessage(f'sensor message with NaN or Inf in {bad}',
                                   'joints' if bad[0].startswith('joint_') else 'imu')
        return out

    def reading(self, sensor_obs: np.ndarray) -> SensorReading:
        """The inverse of `build`: what a driver would publish for this observation."""
        reading = SensorReading(
            joint_position=dict(zip(self.joints, sensor_obs[self._pos].tolist())))
        if self._vel is not None:
            reading.joint_velocity = dict(zip(self.joints, sensor_obs[self._vel].tolist()))
        if self._imu is not None:
            s = self._imu.start
            reading.angular_velocity = sensor_obs[s:s + 3].copy()
            reading.linear_acceleration = sensor_obs[s + 3:s + 6].copy()
            reading.orientation = sensor_obs[s + 6:s + 10].copy()
        if self._command is not None:
            reading.command = sensor_obs[self._command].copy()
        if self._age is not None:
            reading.sample_age = float(sensor_obs[self._age])
        return reading


def sensor_reading(joints, imu=None) -> SensorReading:
    """A `SensorReading` from a driver's sensor_msgs/JointState and sensor_msgs/Imu.

    Duck-typed on the field names, so it takes rclpy messages and the `rosbags` library's message
    objects alike (the live recorder and bag replay share it). Joints are keyed by name; a
    malformed message raises `MalformedMessage`.
    """
    check_joint_state(joints)
    if imu is not None:
        check_imu(imu)
    reading = SensorReading(joint_position=dict(zip(joints.name, (float(v) for v in joints.position))))
    if len(joints.velocity) == len(joints.name):
        reading.joint_velocity = dict(zip(joints.name, (float(v) for v in joints.velocity)))
    if imu is not None:
        o, g, a = imu.orientation, imu.angular_velocity, imu.linear_acceleration
        reading.orientation = np.array([o.x, o.y, o.z, o.w])
        reading.angular_velocity = np.array([g.x, g.y, g.z])
        reading.linear_acceleration = np.array([a.x, a.y, a.z])
    return reading


# ---------------------------------------------------------------- the student's history window
#
# The student reads h_t = (x_{t-H+1}, ..., x_t), oldest first, each step x_k = [sensor_obs_k, a_{k-1}]
# (a_{k-1}: the action executed after the previous observation, zero at an episode's first step;
# left out when the student has no past actions). Before an episode's first step its first step
# repeats. This module is the one definition of that window: `HistoryBuffer` builds it tick by tick
# at run time (student controller, evaluation, DAgger, fine-tuning, through `Checkpoint.history_buffer`
# and `Actor`); `history_steps` and `window_rows` build the same windows from a recorded dataset
# for training (`data.sampler.HistorySampler`), and a test proves both equal.


class HistoryBuffer:
    """The student's input at run time: the last `history` steps, oldest first, each step the sensor
    observation followed (when `action_dim` > 0) by the action executed after the previous one.

    Preallocated and written twice (at `pos` and `pos + history`), so `window` is always one
    contiguous view and a tick allocates nothing. Before the first push of an episode every slot
    repeats the first observation with a zero previous action, which is exactly what
    `history_steps` + `window_rows` build from a dataset for training.
    """

    def __init__(self, history: int, obs_dim: int, action_dim: int = 0, dtype=np.float32):
        if history < 1:
            raise ValueError(f'history must be >= 1, got {history}')
        self.history, self.obs_dim, self.action_dim = history, obs_dim, action_dim
        self.step_dim = obs_dim + action_dim
        self._buf = np.zeros((2 * history, self.step_dim), dtype=dtype)
        self._prev_action = np.zeros(action_dim, dtype=dtype)
        self._pos = 0
        self._started = False

    def reset(self) -> None:
        self._started = False
        self._prev_action[:] = 0.0

    def push(self, obs: np.ndarray) -> np.ndarray:
        """Add this tick's observation; returns the (history, step_dim) window ending with it."""
        h = self.history
        if not self._started:
            self._buf[:, :self.obs_dim] = obs
            self._buf[:, self.obs_dim:] = 0.0
            self._pos = h - 1
            self._started = True
        else:
            self._pos = (self._pos + 1) % h
            for row in (self._pos, self._pos + h):
                self._buf[row, :self.obs_dim] = obs
                self._buf[row, self.obs_dim:] = self._prev_action
        return self.window

    @property
    def window(self) -> np.ndarray:
        return self._buf[self._pos + 1:self._pos + 1 + self.history]

    def set_action(self, action: np.ndarray) -> None:
        """The action actually executed after the last pushed observation (enters the next step)."""
        if self.action_dim:
            self._prev_action[:] = action


def history_steps(sensor_obs: np.ndarray, action: np.ndarray | None, episode_starts: np.ndarray) -> np.ndarray:
    """Per-sample step rows [sensor_obs_t, action_{t-1}] of a dataset (zero action at an episode's
    first sample), as `HistoryBuffer` builds them live. `action=None` gives the observation only."""
    sensor_obs = np.asarray(sensor_obs, dtype=np.float32)
    if action is None:
        return sensor_obs
    prev = np.zeros_like(action, dtype=np.float32)
    prev[1:] = action[:-1]
    prev[np.asarray(episode_starts, dtype=np.int64)] = 0.0
    return np.concatenate([sensor_obs, prev], axis=1)


def window_rows(index: np.ndarray, episode_start: np.ndarray, history: int) -> np.ndarray:
    """(len(index), history) dataset rows of the window ending at each sample of `index`, oldest
    first: index - history + 1 ... index, never before its episode's first row, which repeats there
    (`episode_start`: the first row of each index's episode). `history_steps(...)[window_rows(...)]`
    is what `HistoryBuffer.push` returns at each step of the episode."""
    back = np.arange(history - 1, -1, -1)
    return np.maximum(np.asarray(index)[:, None] - back, np.asarray(episode_start)[:, None])
