"""Task definitions: one YAML file per task under `config/tasks/`, validated into a `TaskSpec`."""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_ros.observation import COMMAND_ELEMENTS
from distill_ros.paths import UserFileError, config_path, load_user_yaml


class TaskConfigError(ValueError):
    """A task YAML is missing a key or holds a value of the wrong kind."""


@dataclass(frozen=True)
class Distribution:
    """A per-episode random draw: `uniform(low, high)`, `loguniform(low, high)`,
    `normal(mean, std)` or `fixed(value)`."""

    dist: str
    a: float
    b: float = 0.0

    KINDS = ('uniform', 'loguniform', 'normal', 'fixed')

    def sample(self, rng) -> float:
        if self.dist == 'uniform':
            return float(rng.uniform(self.a, self.b))
        if self.dist == 'loguniform':
            import math
            return float(math.exp(rng.uniform(math.log(self.a), math.log(self.b))))
        if self.dist == 'normal':
            return float(rng.normal(self.a, self.b))
        return float(self.a)

    @property
    def nominal(self) -> float:
        """The centre of the distribution, used when randomization is switched off."""
        if self.dist == 'uniform':
            return 0.5 * (self.a + self.b)
        if self.dist == 'loguniform':
            return float((self.a * self.b) ** 0.5)
        return float(self.a)


@dataclass(frozen=True)
class EncoderNoise:
    noise_std: float = 0.0      # white noise on each reading
    bias_std: float = 0.0       # per-episode constant offset (calibration error)
    resolution: float = 0.0     # quantization step; 0 = none
    velocity_noise_std: float = 0.0


@dataclass(frozen=True)
class ImuNoise:
    gyro_noise_std: float = 0.0
    gyro_bias_std: float = 0.0
    accel_noise_std: float = 0.0
    orientation_noise_std: float = 0.0


TORQUE, POSITION = 'torque', 'position'
# A per-joint value: one number for every actuated joint, or {joint name or regex: number}.
JointValues = float | dict[str, float]


@dataclass(frozen=True)
class Actuation:
    """How an action reaches the joints.

    `torque`: the action is the actuators' control (as gymnasium's tasks have it). `position`: the
    action a is an offset from `default_pose`; the target q* = default_pose + action_scale * a is
    tracked by a PD law tau = kp (q* - q) - kd qdot, clipped to +-torque_limit, that MuJoCo evaluates
    at every physics step, while the policy acts every `decimation` physics steps."""

    type: str = TORQUE
    kp: JointValues = 0.0
    kd: JointValues = 0.0
    default_pose: JointValues = 0.0
    action_scale: JointValues = 1.0   # per joint too: legged policies scale hips 0.125, thighs and calves 0.25
    action_clip: float = 1.0
    torque_limit: JointValues = math.inf
    decimation: int = 1


# Reward terms of an env.model task: name -> (parameters with defaults). The term's value each
# policy step is weight * term; see docs/tasks.md for the formulas.
REWARD_TERMS: dict[str, dict[str, float]] = {
    'alive': {},
    'lin_vel_tracking': {'sigma': 0.25},
    'yaw_rate_tracking': {'sigma': 0.25},
    'lin_vel_z': {},
    'ang_vel_xy': {},
    'orientation': {},
    'base_height': {'target': 0.0},
    'torque': {},
    'action_rate': {},
    'feet_air_time': {'target': 0.5, 'min_command': 0.1},
}


@dataclass(frozen=True)
class RewardTerm:
    weight: float
    params: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Termination:
    """When an env.model task's episode ends early (each rule off when unset)."""

    base_height_below: float | None = None
    tilt_above: float | None = None           # rad between the base's z axis and the world's
    contact_bodies: tuple[str, ...] = ()      # a contact on any of these bodies ends the episode


@dataclass(frozen=True)
class TaskFile:
    """A task given as a file rather than by a built-in name: where its YAML was and what it held
    (sha256 of the YAML and of its env.model file), so that a dataset or checkpoint made on it
    loads the same task again, and refuses a task file that moved or changed since. (A model's
    meshes and included files are not hashed.)"""

    path: str
    sha256: str
    model_sha256: str = ''

    def to_json(self) -> dict[str, str]:
        return {'path': self.path, 'sha256': self.sha256, **({'model_sha256': self.model_sha256}
                                                              if self.model_sha256 else {})}

    @classmethod
    def from_json(cls, data: dict[str, str] | None) -> TaskFile | None:
        if not data:
            return None
        return cls(str(data['path']), str(data['sha256']), str(data.get('model_sha256', '')))


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    env_id: str
    env_kwargs: dict[str, Any]
    max_episode_steps: int
    best_return: float
    imu_body: str | None
    imu_pos: tuple[float, float, float]
    sensor_joints: tuple[str, ...]
    joint_velocity: bool
    encoder: EncoderNoise
    imu_noise: ImuNoise
    latency_steps: tuple[int, int]
    qpos_exclude: tuple[str, ...]
    contact_bodies: tuple[str, ...]
    contact_force_clip: float
    sensor_fields: tuple[str, ...] = ()   # sensor fields the teacher also sees (as read: noise, latency)
    randomization: dict[str, Distribution] = field(default_factory=dict)
    name_bodies: dict[str, str] = field(default_factory=dict)
    source: str = ''
    # A task on a MuJoCo model file (env.model, resolved to an absolute path) or a MuJoCo Menagerie
    # robot (env.menagerie) instead of a gymnasium id (env_id is then empty).
    model_file: str = ''
    menagerie: str = ''
    base_body: str = ''           # empty: the body of the model's free joint
    reset_noise_scale: float = 0.0
    actuation: Actuation = field(default_factory=Actuation)
    command: dict[str, tuple[float, float]] = field(default_factory=dict)   # COMMAND_ELEMENTS -> range
    reward: dict[str, RewardTerm] = field(default_factory=dict)
    terminate: Termination = field(default_factory=Termination)
    sample_age: bool = False      # the student reads its sensor sample's age (observation.SAMPLE_AGE)
    # The teacher's observation as a list of terms (contract.ObsGroup), as a policy trained elsewhere
    # reads it (Isaac Lab / mjlab / legged_gym); None: the raw privileged fields (qpos, qvel, ...).
    teacher_observation: Any = None
    imu_site: str | None = None   # the model's own IMU site (imu.site) instead of one added on imu_body
    timestep: float = 0.0         # env.timestep: the physics step (s) of a model-file task; 0: the model's
    add_floor: bool | None = None   # env.add_floor: true adds a floor plane; false: none wanted; unset: the model's
    file: TaskFile | None = None  # set by load_task for a task YAML that is not a built-in task

    @property
    def is_gymnasium(self) -> bool:
        return bool(self.env_id)

    @property
    def has_imu(self) -> bool:
        """Whether the robot has an IMU: a site the task adds (imu.body) or the model's own (imu.site)."""
        return self.imu_body is not None or self.imu_site is not None


RANDOMIZABLE = ('mass_scale', 'friction_scale', 'motor_strength', 'joint_damping_scale')


def _get(section: dict, key: str, kind, where: str, default: Any = ...):
    if key not in section:
        if default is ...:
            raise TaskConfigError(f'{where}: missing key {key!r}')
        return default
    value = section[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise TaskConfigError(f'{where}: {key!r} must be {getattr(kind, "__name__", kind)}, got {value!r}')
    return value


def _distribution(name: str, data: Any, where: str) -> Distribution:
    where = f'{where}: randomization.{name}'
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return Distribution('fixed', float(data))
    if not isinstance(data, dict):
        raise TaskConfigError(f'{where} must be a number or a mapping with "dist", got {data!r}')
    dist = data.get('dist', 'uniform')
    if dist not in Distribution.KINDS:
        raise TaskConfigError(f'{where}: unknown dist {dist!r}; expected one of {Distribution.KINDS}')
    if dist in ('uniform', 'loguniform'):
        low, high = _get(data, 'low', float, where), _get(data, 'high', float, where)
        if not low <= high:
            raise TaskConfigError(f'{where}: low ({low}) must not exceed high ({high})')
        if dist == 'loguniform' and low <= 0:
            raise TaskConfigError(f'{where}: loguniform needs low > 0, got {low}')
        return Distribution(dist, low, high)
    if dist == 'normal':
        std = _get(data, 'std', float, where)
        if std < 0:
            raise TaskConfigError(f'{where}: std must be >= 0, got {std}')
        return Distribution(dist, _get(data, 'mean', float, where), std)
    return Distribution(dist, _get(data, 'value', float, where))


def _nonnegative(cls, data: dict, where: str):
    values = {}
    for key in cls.__dataclass_fields__:
        v = _get(data, key, float, where, 0.0)
        if v < 0:
            raise TaskConfigError(f'{where}: {key} must be >= 0, got {v}')
        values[key] = v
    unknown = set(data) - set(values)
    if unknown:
        raise TaskConfigError(f'{where}: unknown keys {sorted(unknown)}; expected {sorted(values)}')
    return cls(**values)


def _joint_values(data: Any, where: str) -> JointValues:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data)
    if (isinstance(data, dict) and data and all(isinstance(k, str) for k in data)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values())):
        return {k: float(v) for k, v in data.items()}
    raise TaskConfigError(f'{where} must be a number or a mapping {{joint name or regex: number}}, got {data!r}')


def _actuation(data: dict, where: str) -> Actuation:
    kind = _get(data, 'type', str, where, TORQUE)
    if kind not in (TORQUE, POSITION):
        raise TaskConfigError(f'{where}.type must be {TORQUE!r} or {POSITION!r}, got {kind!r}')
    keys = set(Actuation.__dataclass_fields__)
    allowed = {'type', 'decimation'} if kind == TORQUE else keys
    unknown = set(data) - allowed
    if unknown:
        raise TaskConfigError(f'{where}: unknown keys {sorted(unknown)} for type {kind}; expected some of '
                              f'{sorted(allowed)}')
    decimation = _get(data, 'decimation', int, where, 1)
    if decimation < 1:
        raise TaskConfigError(f'{where}.decimation must be >= 1, got {decimation}')
    if kind == TORQUE:
        return Actuation(TORQUE, decimation=decimation)
    for key in ('kp', 'kd', 'default_pose'):
        if key not in data:
            raise TaskConfigError(f'{where}: missing key {key!r} (type position)')
    values = {key: _joint_values(data[key], f'{where}.{key}') for key in ('kp', 'kd', 'default_pose')}
    values['torque_limit'] = _joint_values(data.get('torque_limit', math.inf), f'{where}.torque_limit')
    values['action_scale'] = _joint_values(data.get('action_scale', 1.0), f'{where}.action_scale')
    values['action_clip'] = _get(data, 'action_clip', float, where, 1.0)
    for key in ('action_scale', 'action_clip'):
        v = values[key]
        if min(v.values() if isinstance(v, dict) else [v]) <= 0:
            raise TaskConfigError(f'{where}.{key} must be > 0, got {v}')
    for key in ('kp', 'kd', 'torque_limit'):
        v = values[key]
        if min(v.values() if isinstance(v, dict) else [v]) < 0:
            raise TaskConfigError(f'{where}.{key} must be >= 0, got {v}')
    return Actuation(POSITION, decimation=decimation, **values)


def _command(data: dict, where: str) -> dict[str, tuple[float, float]]:
    unknown = set(data) - set(COMMAND_ELEMENTS)
    if unknown:
        raise TaskConfigError(f'{where}: unknown keys {sorted(unknown)}; expected some of {list(COMMAND_ELEMENTS)}')
    command = {}
    for name in COMMAND_ELEMENTS:
        value = data.get(name, [0.0, 0.0])
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                or value[0] > value[1]):
            raise TaskConfigError(f'{where}.{name} must be [low, high] with low <= high, got {value!r}')
        command[name] = (float(value[0]), float(value[1]))
    return command


def _reward(data: dict, where: str) -> dict[str, RewardTerm]:
    terms = {}
    for name, value in data.items():
        if name not in REWARD_TERMS:
            raise TaskConfigError(f'{where}: unknown reward term {name!r}; expected some of {list(REWARD_TERMS)}')
        defaults = REWARD_TERMS[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = {'weight': value}
        if not isinstance(value, dict):
            raise TaskConfigError(f'{where}.{name} must be a weight or a mapping with "weight", got {value!r}')
        unknown = set(value) - {'weight', *defaults}
        if unknown:
            raise TaskConfigError(f'{where}.{name}: unknown keys {sorted(unknown)}; expected weight'
                                  + ''.join(f', {k}' for k in defaults))
        params = {key: _get(value, key, float, f'{where}.{name}', default) for key, default in defaults.items()}
        if 'sigma' in params and params['sigma'] <= 0:
            raise TaskConfigError(f'{where}.{name}.sigma must be > 0, got {params["sigma"]}')
        terms[name] = RewardTerm(_get(value, 'weight', float, f'{where}.{name}'), params)
    return terms


def _termination(data: dict, where: str) -> Termination:
    unknown = set(data) - set(Termination.__dataclass_fields__)
    if unknown:
        raise TaskConfigError(f'{where}: unknown keys {sorted(unknown)}; expected some of '
                              f'{sorted(Termination.__dataclass_fields__)}')
    bodies = _get(data, 'contact_bodies', list, where, [])
    if not all(isinstance(b, str) for b in bodies):
        raise TaskConfigError(f'{where}.contact_bodies must be a list of body names, got {bodies!r}')
    return Termination(_get(data, 'base_height_below', float, where) if 'base_height_below' in data else None,
                       _get(data, 'tilt_above', float, where) if 'tilt_above' in data else None, tuple(bodies))


def _model_source(env: dict, where: str, base_dir: Path | None) -> tuple[str, str, str]:
    """(env_id, model_file, menagerie): exactly one of env.id, env.model, env.menagerie."""
    given = [key for key in ('id', 'model', 'menagerie') if key in env]
    if len(given) != 1:
        raise TaskConfigError(f'{where}: give exactly one of id (a gymnasium id), model (a MuJoCo model file) '
                              f'or menagerie (a MuJoCo Menagerie robot); got {given or "none"}')
    value = _get(env, given[0], str, where)
    if given[0] == 'id':
        return value, '', ''
    if given[0] == 'menagerie':
        return '', '', value
    if value.startswith(PACKAGE_URL):
        path = package_file(value, f'{where}.model')
    else:
        path = Path(os.path.expanduser(value))
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        raise TaskConfigError(f'{where}.model: model file {path} does not exist (a relative path is taken '
                              f'from the task YAML\'s folder, package://<package>/<path> from the package\'s share '
                              f'folder)')
    return '', str(path.resolve()), ''


PACKAGE_URL = 'package://'


def package_file(url: str, where: str) -> Path:
    """package://<package>/<path> (the ROS convention of robot descriptions): <path> in the package's
    share folder, from the ament index of the sourced workspace (AMENT_PREFIX_PATH)."""
    package, _, relative = url[len(PACKAGE_URL):].partition('/')
    if not package or not relative:
        raise TaskConfigError(f'{where}: {url!r} is not package://<package>/<path inside its share folder>')
    if package == 'distill_ros':
        from distill_ros.paths import share_dir
        return share_dir() / relative
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        raise TaskConfigError(f'{where}: {url!r} needs the ament index (ament_index_python) to find package '
                              f'{package!r}; source your ROS 2 workspace, or give the model file\'s path') from None
    try:
        return Path(get_package_share_directory(package)) / relative
    except (PackageNotFoundError, OSError, ValueError) as exc:
        raise TaskConfigError(f'{where}: package {package!r} of {url!r} is not in the ament index '
                              f'(AMENT_PREFIX_PATH={os.environ.get("AMENT_PREFIX_PATH", "")!r}): {exc}; source the '
                              f'workspace that installs it, or give the model file\'s path') from None


def _latency(latency: Any, source: str) -> list[int]:
    """sensors.latency_steps: an int, or [min, max] ints with 0 <= min <= max."""
    if isinstance(latency, int):
        latency = [latency, latency]
    if (not isinstance(latency, list) or len(latency) != 2 or not all(isinstance(v, int) for v in latency)
            or not 0 <= latency[0] <= latency[1]):
        raise TaskConfigError(f'{source}: sensors.latency_steps must be an int or [min, max] ints '
                              f'with 0 <= min <= max, got {latency!r}')
    return latency


def _randomization(data: dict, source: str) -> dict[str, Distribution]:
    randomization = {}
    for name, value in data.items():
        if name not in RANDOMIZABLE:
            raise TaskConfigError(f'{source}: unknown randomization parameter {name!r}; '
                                  f'expected some of {RANDOMIZABLE}')
        randomization[name] = _distribution(name, value, source)
    return randomization


IMU_KEYS = ('body', 'pos', 'site')


def _imu(imu: dict, source: str) -> tuple[str | None, str | None, tuple[float, float, float]]:
    """(imu.body, imu.site, imu.pos): a site the task adds on `body` at `pos`, or the model's own
    `site` (a robot's MJCF often has one where the real IMU sits; its frame is the IMU's)."""
    unknown = sorted(set(imu) - set(IMU_KEYS))
    if unknown:
        raise TaskConfigError(f'{source}: imu: unknown keys {unknown}; expected some of {list(IMU_KEYS)}')
    body, site = imu.get('body'), imu.get('site')
    for key, value in (('body', body), ('site', site)):
        if value is not None and not isinstance(value, str):
            raise TaskConfigError(f'{source}: imu.{key} must be a name (str), got {value!r}')
    if site is not None and ({'body', 'pos'} & set(imu)):
        raise TaskConfigError(f'{source}: imu.site {site!r} is the model\'s own site, which fixes the IMU\'s body, '
                              f'position and frame; drop imu.{" and imu.".join(sorted({"body", "pos"} & set(imu)))}, '
                              f'or drop imu.site to add a site on imu.body at imu.pos')
    pos = imu.get('pos', [0.0, 0.0, 0.0])
    if (not isinstance(pos, list) or len(pos) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos)):
        raise TaskConfigError(f'{source}: imu.pos must be [x, y, z], got {pos!r}')
    return body, site, (float(pos[0]), float(pos[1]), float(pos[2]))


# Every key a task YAML may hold, by section: anything else is refused rather than silently ignored
# (a misspelt or unsupported key would otherwise leave the task as if it were not there).
TASK_KEYS = ('name', 'description', 'env', 'model', 'imu', 'sensors', 'privileged', 'randomization', 'actuation',
             'command', 'reward', 'terminate', 'observation')
ENV_KEYS = ('id', 'model', 'menagerie', 'kwargs', 'max_episode_steps', 'best_return', 'reset_noise_scale',
            'base_body', 'timestep', 'add_floor')
SENSOR_KEYS = ('joints', 'joint_velocity', 'encoder', 'imu', 'latency_steps', 'sample_age')
PRIVILEGED_KEYS = ('qpos_exclude', 'contact_bodies', 'contact_force_clip', 'sensor_fields')
MODEL_KEYS = ('name_bodies',)


def _known_keys(section: dict, known: tuple[str, ...], where: str) -> None:
    unknown = [key for key in section if key not in known]
    if unknown:
        raise TaskConfigError(f'{where}: unknown keys {unknown}; expected some of {list(known)}')


def _check_source_keys(data: dict, env: dict, env_id: str, source: str) -> None:
    """The sections of a task on a model file are refused on a gymnasium task, and the reverse."""
    mjcf_only = [key for key in ('reward', 'terminate', 'command', 'actuation') if key in data]
    if env_id and mjcf_only:
        raise TaskConfigError(f'{source}: {mjcf_only} are for tasks on a model file (env.model or env.menagerie); '
                              f'gymnasium env {env_id!r} has its own reward, termination and torque actuation')
    for key in ('base_body', 'reset_noise_scale', 'timestep', 'add_floor'):
        if env_id and key in env:
            raise TaskConfigError(f'{source}: env.{key} is for tasks on a model file; gymnasium takes env.kwargs '
                                  f'(its environment\'s own timestep and frame_skip)')
    if not env_id and 'kwargs' in env:
        raise TaskConfigError(f'{source}: env.kwargs is for gymnasium tasks (env.id)')


def _teacher_observation(data: dict, joints: list[str], privileged: dict, randomization: dict, source: str):
    """`observation.teacher`: the teacher's observation terms (contract.ObsGroup.from_json), over
    `joints` (default: sensors.joints), the privileged contact bodies and the randomized dynamics."""
    from distill_ros.contract import ContractError, ObsGroup

    raw_only = [f'privileged.{key}' for key in ('qpos_exclude', 'sensor_fields') if key in privileged]
    if raw_only:
        raise TaskConfigError(f'{source}: {raw_only} shape the raw privileged fields, which observation.teacher '
                              f'replaces; list the terms the teacher reads instead')
    unknown = set(data) - {'teacher'}
    if unknown:
        raise TaskConfigError(f'{source}: observation: unknown keys {sorted(unknown)}; expected teacher (the '
                              f'teacher\'s observation terms)')
    group = data.get('teacher')
    if not isinstance(group, dict):
        raise TaskConfigError(f'{source}: observation.teacher must be a mapping with terms (and joints, '
                              f'history_layout), got {group!r}')
    group = {'joints': list(joints), 'contact_bodies': list(privileged.get('contact_bodies', [])),
             'dynamics': [name for name in RANDOMIZABLE if name in randomization], **group}
    try:
        return ObsGroup.from_json(group, f'{source}: observation.teacher')
    except ContractError as exc:
        raise TaskConfigError(str(exc)) from None


def parse_task(data: dict, source: str = '<dict>', base_dir: Path | None = None) -> TaskSpec:
    """Validate a task mapping (the content of a task YAML) into a `TaskSpec`. A relative env.model
    path is taken from `base_dir` (the YAML's folder; default: the working directory)."""
    if not isinstance(data, dict):
        raise TaskConfigError(f'{source}: a task file must hold a mapping, got {type(data).__name__}')
    _known_keys(data, TASK_KEYS, source)
    env = _get(data, 'env', dict, source)
    sensors = _get(data, 'sensors', dict, source)
    privileged = _get(data, 'privileged', dict, source, {})
    imu = _get(data, 'imu', dict, source, {})
    model = _get(data, 'model', dict, source, {})
    for section, known, key in ((env, ENV_KEYS, 'env'), (sensors, SENSOR_KEYS, 'sensors'),
                                (privileged, PRIVILEGED_KEYS, 'privileged'), (model, MODEL_KEYS, 'model')):
        _known_keys(section, known, f'{source}: {key}')
    latency = _latency(sensors.get('latency_steps', 0), source)
    randomization = _randomization(_get(data, 'randomization', dict, source, {}), source)
    joints = _get(sensors, 'joints', list, f'{source}: sensors')
    if not joints or not all(isinstance(j, str) for j in joints):
        raise TaskConfigError(f'{source}: sensors.joints must be a non-empty list of joint names')
    imu_body, imu_site, imu_pos = _imu(imu, source)
    env_id, model_file, menagerie = _model_source(env, f'{source}: env', base_dir)
    _check_source_keys(data, env, env_id, source)
    reward = _reward(_get(data, 'reward', dict, source, {}), f'{source}: reward')
    if not env_id and not reward:
        raise TaskConfigError(f'{source}: a task on a model file needs a reward section (e.g. reward: {{alive: 1.0}})')
    reset_noise = _get(env, 'reset_noise_scale', float, f'{source}: env', 0.0)
    if reset_noise < 0:
        raise TaskConfigError(f'{source}: env.reset_noise_scale must be >= 0, got {reset_noise}')
    max_steps = _get(env, 'max_episode_steps', int, f'{source}: env')
    if max_steps <= 0:
        raise TaskConfigError(f'{source}: env.max_episode_steps must be > 0, got {max_steps}')
    timestep = _get(env, 'timestep', float, f'{source}: env', 0.0)
    if 'timestep' in env and not 0.0 < timestep <= 0.1:
        raise TaskConfigError(f'{source}: env.timestep must be a physics step in seconds, 0 < timestep <= 0.1, '
                              f'got {timestep}')
    return TaskSpec(
        name=_get(data, 'name', str, source),
        description=str(data.get('description', '')).strip(),
        env_id=env_id,
        env_kwargs=dict(_get(env, 'kwargs', dict, f'{source}: env', {})),
        max_episode_steps=max_steps,
        best_return=_get(env, 'best_return', float, f'{source}: env'),
        imu_body=imu_body,
        imu_site=imu_site,
        imu_pos=imu_pos,
        sensor_joints=tuple(joints),
        joint_velocity=_get(sensors, 'joint_velocity', bool, f'{source}: sensors', False),
        encoder=_nonnegative(EncoderNoise, sensors.get('encoder', {}) or {}, f'{source}: sensors.encoder'),
        imu_noise=_nonnegative(ImuNoise, sensors.get('imu', {}) or {}, f'{source}: sensors.imu'),
        latency_steps=(latency[0], latency[1]),
        sample_age=_get(sensors, 'sample_age', bool, f'{source}: sensors', False),
        qpos_exclude=tuple(_get(privileged, 'qpos_exclude', list, f'{source}: privileged', [])),
        contact_bodies=tuple(_get(privileged, 'contact_bodies', list, f'{source}: privileged', [])),
        contact_force_clip=_get(privileged, 'contact_force_clip', float, f'{source}: privileged', 1e3),
        sensor_fields=tuple(_get(privileged, 'sensor_fields', list, f'{source}: privileged', [])),
        randomization=randomization,
        name_bodies={str(k): str(v) for k, v in _get(model, 'name_bodies', dict, f'{source}: model', {}).items()},
        source=source,
        model_file=model_file,
        menagerie=menagerie,
        base_body=_get(env, 'base_body', str, f'{source}: env', ''),
        reset_noise_scale=reset_noise,
        actuation=_actuation(_get(data, 'actuation', dict, source, {}), f'{source}: actuation'),
        command=_command(_get(data, 'command', dict, source), f'{source}: command') if 'command' in data else {},
        reward=reward,
        terminate=_termination(_get(data, 'terminate', dict, source, {}), f'{source}: terminate'),
        teacher_observation=_teacher_observation(
            _get(data, 'observation', dict, source), joints, privileged, randomization, source)
        if 'observation' in data else None,
        timestep=timestep,
        add_floor=_get(env, 'add_floor', bool, f'{source}: env') if 'add_floor' in env else None,
    )


def task_names() -> list[str]:
    """The built-in tasks: one per YAML file in config/tasks/."""
    return sorted(p.stem for p in config_path('tasks').glob('*.yaml'))


def load_task(name_or_path: str | Path) -> TaskSpec:
    """Load a built-in task by name (`cartpole`, `hopper`, `ant`) or any task YAML by path. A task
    YAML other than a built-in one carries its `TaskFile` (path and hashes) in `TaskSpec.file`."""
    path = Path(name_or_path)
    if path.suffix not in ('.yaml', '.yml'):
        path = config_path('tasks', f'{name_or_path}.yaml')
        if not path.is_file():
            raise TaskConfigError(f'unknown task {str(name_or_path)!r}; built-in tasks are {task_names()} '
                                  f'(or pass the path of a task YAML)')
    if not path.is_file():
        raise TaskConfigError(f'task file {path} does not exist')
    try:
        data = load_user_yaml(path, 'task file', mapping=False)
    except UserFileError as exc:
        raise TaskConfigError(str(exc)) from None
    spec = parse_task(data, str(path), path.parent)
    builtin = path.resolve().parent == config_path('tasks').resolve() and path.stem == spec.name
    if builtin:   # recorded by name, as before: the package's own file
        return spec
    return dataclasses.replace(spec, file=TaskFile(str(path.resolve()), _file_sha256(path),
                                                   _file_sha256(Path(spec.model_file)) if spec.model_file else ''))


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve_task(name: str, file: TaskFile | None, what: str, given: str | Path | None = None) -> TaskSpec:
    """The task that `what` (a dataset or checkpoint, named in messages) was made on: the task
    file it records, checked against the hashes it records, or the built-in task `name` when it
    records none. `given` (a user's --task: a path or name) stands in for a task file that moved;
    it must be the task `name` and, when a file is recorded, hold the same content. A file that is
    gone or changed is refused in one line: data recorded on one task must not be mixed with, or
    evaluated on, another."""
    if given is not None:
        spec = load_task(given)
        if spec.name != name:
            raise TaskConfigError(f'{what} was made on task {name!r}, but {given} is task {spec.name!r}')
        if file is not None:
            _check_same(file, spec, what, name, str(given))
        return spec
    if file is None:
        if name not in task_names():
            raise TaskConfigError(f'{what} names task {name!r}, which is not a built-in task ({task_names()}), and '
                                  f'records no task file (it was made before task files were recorded); pass the '
                                  f'task YAML with --task')
        return load_task(name)
    path = Path(file.path)
    if not path.is_file():
        raise TaskConfigError(f'{what} was made on task {name!r} from task file {path}, which no longer exists; '
                              f'put it back there or pass its new path with --task (sha256 {file.sha256[:12]}…)')
    spec = load_task(path)
    _check_same(file, spec, what, name, str(path))
    return spec


def _check_same(recorded: TaskFile, spec: TaskSpec, what: str, name: str, where: str) -> None:
    """Refuse a task file (or its model) whose content differs from what `what` recorded."""
    now = spec.file
    if now is None or now.sha256 != recorded.sha256:
        found = f'sha256 {now.sha256[:12]}…' if now is not None else 'a built-in task'
        raise TaskConfigError(f'{what} was made on task {name!r} from {recorded.path} (sha256 '
                              f'{recorded.sha256[:12]}…), but {where} is {found}: the task changed since; restore '
                              f'the file as it was, or record the data / train anew on the changed task')
    if now.model_sha256 != recorded.model_sha256:
        raise TaskConfigError(f'{what} was made on task {name!r}, whose model file {spec.model_file} has changed '
                              f'since (sha256 '
                              f'{recorded.model_sha256[:12]}…, now {now.model_sha256[:12]}…); restore the model, or '
                              f'record the data / train anew on the changed model')
