"""Distillation job configuration (config/distill/*.yaml), validated before anything runs.

Every section is a dataclass; an unknown key, a wrong type or an impossible value is refused with
the key's full path (for example `losses.kl.direction`) and what was expected.
"""
from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_ros.distill.losses import BC_KINDS, KL_DIRECTIONS
from distill_ros.paths import UserFileError, load_user_yaml
from distill_ros.policies.mlp import ACTIVATIONS
from distill_ros.policies.students import RNN_CELLS, STUDENT_TYPES

RECURRENT_TYPES = tuple(RNN_CELLS)   # students whose memory is a hidden state (history 1)


class ConfigError(ValueError):
    """A distillation config is malformed."""


@dataclass
class StudentConfig:
    type: str = 'mlp'                  # mlp | tcn | gru-window (window students) | gru | lstm (recurrent)
    history: int = 8                   # steps of sensor history the student sees (recurrent: 1)
    past_actions: bool = True          # each step also holds the previously executed action
    activation: str = 'tanh'
    log_std_init: float = -0.5
    sizes: dict[str, Any] = field(default_factory=lambda: {'hidden': [64, 64]})


@dataclass
class BCConfig:
    weight: float = 1.0
    kind: str = 'mse'                  # mse | huber
    clip_labels: bool = True           # regress the teacher's mean clipped to the action limits (what executes)


@dataclass
class KLConfig:
    weight: float = 0.1
    direction: str = 'forward'         # forward: KL(teacher || student); reverse: KL(student || teacher)


@dataclass
class FeatureConfig:
    weight: float = 0.1
    teacher_feature: str = 'latent'    # a named feature of the teacher (hidden0, ..., latent)


@dataclass
class EstimatorConfig:
    weight: float = 0.0                # regress the (standardized) privileged state from the student's latent


@dataclass
class LossConfig:
    bc: BCConfig = field(default_factory=BCConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    feature: FeatureConfig = field(default_factory=FeatureConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)


@dataclass
class TrainConfig:
    steps: int = 2000                  # optimizer steps (per stage / per DAgger round: see dagger)
    batch_size: int = 256              # global batch (split across ranks under torchrun)
    lr: float = 1e-3
    lr_schedule: str = 'constant'      # constant | cosine: from lr down to lr * lr_final_ratio over the stage's steps
    lr_final_ratio: float = 0.05       # cosine only
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    val_fraction: float = 0.1          # share of episodes held out for validation / early stopping
    eval_every: int = 250
    patience: int = 8                  # evaluations without improvement before stopping
    seed: int = 0
    torch_threads: int = 1
    sequence_length: int = 32          # recurrent students: loss steps per truncated-BPTT sequence
    burn_in: int = 32                  # recurrent students: steps that warm the state up before them


@dataclass
class DaggerConfig:
    rounds: int = 3
    envs: int = 4                      # environments stepped together (batched student inference)
    episodes_per_round: int = 8
    max_episode_steps: int = 0         # 0: the task's episode length
    beta: float = 0.5                  # probability the teacher's action is executed, round 1
    beta_decay: float = 0.5            # beta_k = beta * beta_decay ** k
    steps_per_round: int = 1000        # optimizer steps after each round (on all data so far)
    keep: str = 'last'                 # last | best: the student that scored best acting alone (beta 0)
                                       # in its own collection round (the last one measured by one more)


@dataclass
class ProgressiveConfig:
    # Student sections for the intermediate stages, largest first, each partial (merged onto
    # `student`); the final stage is `student` itself. Empty: distil directly.
    stages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EvalConfig:
    episodes: int = 20


@dataclass
class DistillConfig:
    student: StudentConfig = field(default_factory=StudentConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dagger: DaggerConfig = field(default_factory=DaggerConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def stage_students(self) -> list[StudentConfig]:
        """Student configs of every stage, the final student last."""
        stages = []
        for i, partial in enumerate(self.progressive.stages):
            merged = {**dataclasses.asdict(self.student), **partial}
            if partial.get('type') in RECURRENT_TYPES and 'history' not in partial:
                merged['history'] = 1
            stages.append(_build(StudentConfig, merged, f'progressive.stages[{i}]'))
        return stages + [self.student]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        for option in options:
            try:
                return _check_type(value, option, where)
            except ConfigError:
                pass
        raise ConfigError(f'{where}: {value!r} is not one of {options}')
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f'{where}: expected a list, got {value!r}')
        (item,) = typing.get_args(kind)
        return [_check_type(v, item, f'{where}[{i}]') for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f'{where}: expected a mapping, got {value!r}')
        return dict(value)
    if kind is typing.Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f'{where}: expected {kind.__name__}, got {value!r}')
    return value


def _build(cls, data: Any, where: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f'{where or "config"}: expected a mapping of {cls.__name__} keys, got {data!r}')
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f'{where}.' if where else ''
        raise ConfigError(f'unknown key {prefix}{unknown[0]}; expected one of {sorted(known)}')
    values = {}
    for name, value in data.items():
        path = f'{where}.{name}' if where else name
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(kind, value, path)
        else:
            values[name] = _check_type(value, kind, path)
    return cls(**values)


def _size_options(kind: str) -> dict[str, Any]:
    """The size options a student type takes (its constructor's keywords after the shared
    ones), with their defaults: a sequence default means a list of widths, an int one width."""
    shared = {'self', 'step_dim', 'action_dim', 'history'}
    return {name: p.default for name, p in inspect.signature(STUDENT_TYPES[kind].__init__).parameters.items()
            if name not in shared and p.kind is p.POSITIONAL_OR_KEYWORD}


def _check_sizes(kind: str, sizes: dict[str, Any], where: str) -> None:
    """Refuse unknown size keys and widths that are not positive integers, before any model is built."""
    options = _size_options(kind)
    unknown = sorted(set(sizes) - set(options))
    if unknown:
        raise ConfigError(f'unknown key {where}.{unknown[0]} for a {kind!r} student; expected some of '
                          f'{sorted(options)}')
    for name, value in sizes.items():
        def positive(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 1
        if isinstance(options[name], (list, tuple)):
            if not isinstance(value, list) or not all(positive(v) for v in value):
                raise ConfigError(f'{where}.{name} is {value!r}; expected a list of positive integers (layer widths)')
        elif not positive(value):
            raise ConfigError(f'{where}.{name} is {value!r}; expected a positive integer')


def need(ok: bool, where: str, expected: str, value: Any) -> None:
    """Refuse a config value: its key path, what was found and what was expected."""
    if not ok:
        raise ConfigError(f'{where} is {value!r}; expected {expected}')


def _validate(cfg: DistillConfig) -> None:
    for i, s in enumerate(cfg.stage_students()):
        where = 'student' if i == len(cfg.progressive.stages) else f'progressive.stages[{i}]'
        need(s.type in STUDENT_TYPES, f'{where}.type', f'one of {sorted(STUDENT_TYPES)}', s.type)
        need(s.history >= 1, f'{where}.history', '>= 1', s.history)
        need(s.type not in RECURRENT_TYPES or s.history == 1, f'{where}.history',
             f'1 for a recurrent student ({s.type} carries its memory in its state)', s.history)
        need(s.activation in ACTIVATIONS, f'{where}.activation', f'one of {sorted(ACTIVATIONS)}', s.activation)
        _check_sizes(s.type, s.sizes, f'{where}.sizes')
    loss = cfg.losses
    need(loss.bc.kind in BC_KINDS, 'losses.bc.kind', f'one of {BC_KINDS}', loss.bc.kind)
    need(loss.kl.direction in KL_DIRECTIONS, 'losses.kl.direction', f'one of {KL_DIRECTIONS}', loss.kl.direction)
    for name in ('bc', 'kl', 'feature', 'estimator'):
        w = getattr(loss, name).weight
        need(w >= 0, f'losses.{name}.weight', '>= 0', w)
    need(loss.bc.weight + loss.kl.weight > 0, 'losses.bc.weight + losses.kl.weight', '> 0 (something must fit the '
         'teacher\'s actions)', loss.bc.weight + loss.kl.weight)
    t = cfg.train
    need(t.burn_in >= 0, 'train.burn_in', '>= 0', t.burn_in)
    for name in ('steps', 'batch_size', 'eval_every', 'patience', 'torch_threads', 'sequence_length'):
        need(getattr(t, name) >= 1, f'train.{name}', '>= 1', getattr(t, name))
    need(t.lr > 0, 'train.lr', '> 0', t.lr)
    need(t.lr_schedule in ('constant', 'cosine'), 'train.lr_schedule', "'constant' or 'cosine'", t.lr_schedule)
    need(0 <= t.lr_final_ratio <= 1, 'train.lr_final_ratio', 'in [0, 1]', t.lr_final_ratio)
    need(0 <= t.val_fraction < 1, 'train.val_fraction', 'in [0, 1)', t.val_fraction)
    d = cfg.dagger
    need(d.rounds >= 0, 'dagger.rounds', '>= 0', d.rounds)
    need(0 <= d.beta <= 1, 'dagger.beta', 'in [0, 1]', d.beta)
    need(0 <= d.beta_decay <= 1, 'dagger.beta_decay', 'in [0, 1]', d.beta_decay)
    for name in ('envs', 'episodes_per_round', 'steps_per_round'):
        need(getattr(d, name) >= 1, f'dagger.{name}', '>= 1', getattr(d, name))
    need(d.keep in ('last', 'best'), 'dagger.keep', "'last' or 'best'", d.keep)
    need(cfg.eval.episodes >= 0, 'eval.episodes', '>= 0', cfg.eval.episodes)


def _recurrent_history(student: Any) -> Any:
    """A recurrent student section without `history` reads one step at a time."""
    if isinstance(student, dict) and student.get('type') in RECURRENT_TYPES and 'history' not in student:
        return {**student, 'history': 1}
    return student


def parse_config(data: Any, where: str = '') -> DistillConfig:
    if isinstance(data, dict) and 'student' in data:
        data = {**data, 'student': _recurrent_history(data['student'])}
    cfg = _build(DistillConfig, data, '')
    try:
        _validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f'{where}: {exc}' if where else str(exc)) from None
    return cfg


def read_sections(path: str | Path | None, default: str, what: str,
                  overrides: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """The mapping of sections in a config YAML (default: config/`default`), `overrides` merged per
    section; a missing file, invalid YAML or a non-mapping is refused naming the file."""
    from distill_ros.paths import config_path
    path = Path(path) if path else config_path(default)
    try:
        data = load_user_yaml(path, f'{what} config')
    except UserFileError as exc:
        raise ConfigError(str(exc)) from None
    for section, values in (overrides or {}).items():
        current = data.get(section) or {}
        data[section] = {**current, **values} if isinstance(values, dict) and isinstance(current, dict) else values
    return path, data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> DistillConfig:
    """Read a distillation YAML (default: config/distill/default.yaml); `overrides` is merged per section."""
    path, data = read_sections(path, 'distill/default.yaml', 'distillation', overrides)
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}') from None
