"""Task definitions: one YAML file per task under `config/tasks/`, validated into a `TaskSpec`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def parse_task(data: dict, source: str = '<dict>') -> TaskSpec:
    """Validate a task mapping (the content of a task YAML) into a `TaskSpec`."""
    if not isinstance(data, dict):
        raise TaskConfigError(f'{source}: a task file must hold a mapping, got {type(data).__name__}')
    env = _get(data, 'env', dict, source)
    sensors = _get(data, 'sensors', dict, source)
    privileged = _get(data, 'privileged', dict, source, {})
    imu = _get(data, 'imu', dict, source, {})
    latency = sensors.get('latency_steps', 0)
    if isinstance(latency, int):
        latency = [latency, latency]
    if (not isinstance(latency, list) or len(latency) != 2 or not all(isinstance(v, int) for v in latency)
            or not 0 <= latency[0] <= latency[1]):
        raise TaskConfigError(f'{source}: sensors.latency_steps must be an int or [min, max] ints '
                              f'with 0 <= min <= max, got {latency!r}')
    randomization_data = _get(data, 'randomization', dict, source, {})
    randomization = {}
    for name, value in randomization_data.items():
        if name not in RANDOMIZABLE:
            raise TaskConfigError(f'{source}: unknown randomization parameter {name!r}; '
                                  f'expected some of {RANDOMIZABLE}')
        randomization[name] = _distribution(name, value, source)
    joints = _get(sensors, 'joints', list, f'{source}: sensors')
    if not joints or not all(isinstance(j, str) for j in joints):
        raise TaskConfigError(f'{source}: sensors.joints must be a non-empty list of joint names')
    imu_pos = imu.get('pos', [0.0, 0.0, 0.0])
    if not isinstance(imu_pos, list) or len(imu_pos) != 3:
        raise TaskConfigError(f'{source}: imu.pos must be [x, y, z], got {imu_pos!r}')
    max_steps = _get(env, 'max_episode_steps', int, f'{source}: env')
    if max_steps <= 0:
        raise TaskConfigError(f'{source}: env.max_episode_steps must be > 0, got {max_steps}')
    return TaskSpec(
        name=_get(data, 'name', str, source),
        description=str(data.get('description', '')).strip(),
        env_id=_get(env, 'id', str, f'{source}: env'),
        env_kwargs=dict(_get(env, 'kwargs', dict, f'{source}: env', {})),
        max_episode_steps=max_steps,
        best_return=_get(env, 'best_return', float, f'{source}: env'),
        imu_body=imu.get('body'),
        imu_pos=tuple(float(v) for v in imu_pos),
        sensor_joints=tuple(joints),
        joint_velocity=_get(sensors, 'joint_velocity', bool, f'{source}: sensors', False),
        encoder=_nonnegative(EncoderNoise, sensors.get('encoder', {}) or {}, f'{source}: sensors.encoder'),
        imu_noise=_nonnegative(ImuNoise, sensors.get('imu', {}) or {}, f'{source}: sensors.imu'),
        latency_steps=(latency[0], latency[1]),
        qpos_exclude=tuple(_get(privileged, 'qpos_exclude', list, f'{source}: privileged', [])),
        contact_bodies=tuple(_get(privileged, 'contact_bodies', list, f'{source}: privileged', [])),
        contact_force_clip=_get(privileged, 'contact_force_clip', float, f'{source}: privileged', 1e3),
        sensor_fields=tuple(_get(privileged, 'sensor_fields', list, f'{source}: privileged', [])),
        randomization=randomization,
        name_bodies={str(k): str(v) for k, v in _get(_get(data, 'model', dict, source, {}), 'name_bodies', dict,
                                                      f'{source}: model', {}).items()},
        source=source,
    )


def task_names() -> list[str]:
    """The built-in tasks: one per YAML file in config/tasks/."""
    return sorted(p.stem for p in config_path('tasks').glob('*.yaml'))


def load_task(name_or_path: str | Path) -> TaskSpec:
    """Load a built-in task by name (`cartpole`, `hopper`, `ant`) or any task YAML by path."""
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
    return parse_task(data, str(path))
