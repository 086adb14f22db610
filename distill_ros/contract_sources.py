"""Policy contracts read from the files users already have beside a trained policy.

`load_contract(path, **overrides)` reads a `PolicyContract` (distill_ros.contract) from any of:

- **a distill_ros contract**, YAML or JSON with `format: distill_ros.contract/1` (as
  `write_contract_yaml` writes it), or an ONNX model whose metadata holds it as JSON under
  `distill_ros_contract` (as `attach_onnx_metadata` writes it). Complete: no overrides are taken.
- **an mjlab ONNX export** (`contract_from_onnx`): the string metadata mjlab's exporter attaches
  (`onnx.load(path, load_external_data=False).metadata_props`, lists comma-separated):
  `joint_names` (the policy's joint order), `joint_stiffness`, `joint_damping` (`stiffness`,
  `damping` are read too), `default_joint_pos`, `action_scale` (one value or one per joint),
  `observation_names` (the policy group's terms, in order); `step_dt` if present. When present (some
  exporters add them) `observation_terms_scale`, `observation_terms_clip`,
  `observation_terms_history_length` and `observation_terms_flatten_history_dim` give each term's
  scale, clip and history. mjlab's metadata records no observation scale, clip or history and no
  policy period: without those keys every term has scale 1, no clip and history 1 unless
  `term_scales`, `term_clips`, `term_history` say otherwise, and `step_dt` must be given. mjlab's
  term names map to ours: `joint_pos` -> `joint_pos_rel` and `joint_vel` -> `joint_vel_rel` (mjlab's
  velocity task computes them with `mdp.joint_pos_rel` / `mdp.joint_vel_rel`), `actions` ->
  `last_action`, `command` / `twist` / `velocity_commands` -> `velocity_command`. The action offset
  is the default pose (mjlab's `use_default_offset`, which the metadata does not record). Where the
  model has one input of a fixed width, the contract's observation must have that width.
- **a unitree_rl_lab deploy.yaml** (`contract_from_deploy_yaml`): `joint_ids_map` (policy joint i
  drives SDK motor `joint_ids_map[i]`), `step_dt`, `stiffness` and `damping` (SDK motor order, one
  per motor, as its exporter writes them; a list of one value per policy joint with SDK ids beyond
  it is read as the policy's motors in SDK order), `default_joint_pos` (policy order),
  `commands.base_velocity.ranges` (`lin_vel_x`, `lin_vel_y`, `ang_vel_z`),
  `actions.JointPositionAction` `{scale, offset, clip}` (policy order; `joint_ids` must be null:
  every joint) and `observations.<term>` `{params, clip, scale, history_length}` in file order,
  stacked term-major (the deploy runtime's order; a term's `params.asset_cfg`, a subset of joints, is
  refused). The file names no joints: policy joint i is
  `sdk_joints[joint_ids_map[i]]`, `sdk_joints` given or read from `scene.robot.joint_sdk_names` of an
  `env.yaml` beside it.
- **an rl_sar config.yaml** (`contract_from_rl_sar`), under its one top-level key (`go2/robot_lab:`)
  merged over the robot's `base.yaml` (`<robot>/base.yaml` two folders up, or `base=`): `dt`,
  `decimation`, `observations` (rl_sar names), `observations_history` (steps, 0 = newest: only
  `[N-1, ..., 1, 0]` is representable), `observations_history_priority` (`time`: frame-major,
  `term`: term-major), `num_observations` (checked: one frame's width), `clip_obs`,
  `clip_actions_lower` / `clip_actions_upper`, `rl_kp`, `rl_kd`, `action_scale`, `default_dof_pos`,
  `lin_vel_scale`, `ang_vel_scale`, `dof_pos_scale`, `dof_vel_scale`, `commands_scale`,
  `joint_names` and `joint_mapping` (policy joint i is `joint_names[joint_mapping[i]]`; without
  `joint_mapping`, as in rl_sar before v3, `joint_names` are in the policy's order), `wheel_indices`
  (must be empty). rl_sar clips the scaled observation at `clip_obs`; a term's clip is that bound
  over its scale, which needs one scale per term (else refused unless `clip_obs=None` drops it).
- **an Isaac Lab env.yaml** (`contract_from_isaaclab_env`, the `params/env.yaml` a run dumps; its
  `!!python/tuple` and other python tags are read as plain lists, mappings and strings, never
  executed): `sim.dt`, `decimation`, `observations.policy` (`history_length`,
  `flatten_history_dim`, `concatenate_terms`, and each term's `func`, `params.asset_cfg.joint_names`,
  `params.command_name`, `scale`, `clip`, `history_length`, `flatten_history_dim`, `modifiers`;
  `noise` is training-time corruption and not part of the contract), `actions.<term>` (one
  `JointPositionAction`: `joint_names`, `preserve_order`, `scale`, `offset`, `use_default_offset`,
  `clip`), `scene.robot.actuators.<name>` `{joint_names_expr, stiffness, damping}`,
  `scene.robot.init_state.joint_pos` (`{regex: value}`; unmatched joints 0, as Isaac Lab),
  `commands.<command_name>.ranges`. Terms are known by their `func`. The joint order is not in the
  file: `joints` must list the articulation's joints in Isaac Lab's order (`asset.data.joint_names`),
  against which every regex resolves as Isaac Lab resolves it (full match; a joint matching two
  expressions, or an expression matching none, is refused).

Every missing or contradictory key is refused with one `ContractError` line naming the file and the
key. `write_contract_yaml` and `attach_onnx_metadata` write a contract back (the latter also writes
mjlab's keys, so tools reading mjlab metadata read the same joints, gains, pose and scale).
"""
from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from distill_ros.contract import (
    CONTRACT_FORMAT,
    FRAME_MAJOR,
    TERM_MAJOR,
    TERMS,
    ContractError,
    ObsGroup,
    PolicyContract,
    make_term,
)

ONNX_CONTRACT_KEY = 'distill_ros_contract'
COMMAND_RANGE_KEYS = ('lin_vel_x', 'lin_vel_y', 'ang_vel_z')

# Term names of each source -> ours (our own names are accepted everywhere as themselves).
MJLAB_TERMS = {'joint_pos': 'joint_pos_rel', 'joint_vel': 'joint_vel_rel', 'actions': 'last_action',
               'command': 'velocity_command', 'twist': 'velocity_command', 'velocity_commands': 'velocity_command'}
DEPLOY_TERMS = {'velocity_commands': 'velocity_command', 'generated_commands': 'velocity_command'}
ISAACLAB_FUNCS = {'base_lin_vel': 'base_lin_vel', 'base_ang_vel': 'base_ang_vel',
                  'projected_gravity': 'projected_gravity', 'generated_commands': 'velocity_command',
                  'joint_pos': 'joint_pos', 'joint_pos_rel': 'joint_pos_rel', 'joint_vel': 'joint_vel',
                  'joint_vel_rel': 'joint_vel_rel', 'last_action': 'last_action'}
# rl_sar observation name -> (our term, the key of its scale; None: unscaled)
RL_SAR_TERMS = {'lin_vel': ('base_lin_vel', 'lin_vel_scale'), 'ang_vel': ('base_ang_vel', 'ang_vel_scale'),
                'gravity_vec': ('projected_gravity', None), 'commands': ('velocity_command', 'commands_scale'),
                'dof_pos': ('joint_pos_rel', 'dof_pos_scale'), 'dof_vel': ('joint_vel', 'dof_vel_scale'),
                'actions': ('last_action', None)}


# ---------------------------------------------------------------- reading files
class _TolerantLoader(yaml.SafeLoader):
    """yaml.SafeLoader that reads any tag it does not know (`!!python/tuple`,
    `!!python/object/apply:builtins.slice`, ...) as the plain list, mapping or string under it."""


def _construct_untagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TolerantLoader.add_constructor(None, _construct_untagged)


def load_yaml(path: str | Path) -> Any:
    """A YAML (or JSON) file's data; python object tags become plain data, none is executed."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ContractError(f'{path}: cannot read: {exc.strerror or exc}') from None
    except UnicodeDecodeError:
        raise ContractError(f'{path}: not a text file (expected a YAML contract source: deploy.yaml, env.yaml, '
                            f'an rl_sar config, a distill_ros contract)') from None
    try:
        return yaml.load(text, Loader=_TolerantLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ContractError(f'{path}: not valid YAML: {" ".join(str(exc).split())}') from None


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX model's string metadata (its weights are not loaded)."""
    return {p.key: p.value for p in _load_onnx(path).metadata_props}


def _load_onnx(path: str | Path):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a file that is not a model
        raise ContractError(f'{path}: not a readable ONNX model: {" ".join(str(exc).split()) or type(exc).__name__}') \
            from None


# ---------------------------------------------------------------- checked values
class _File:
    """The file being read, for error messages that name it and the key."""

    def __init__(self, path: str | Path):
        self.name = str(path)

    def error(self, text: str) -> ContractError:
        return ContractError(f'{self.name}: {text}')

    def get(self, data: Any, key: str, default: Any = ..., at: str = '') -> Any:
        """`data[a][b]...` for key 'a.b...'; a missing key refused (unless a default is given). `at`:
        where `data` is in the file (a prefix for the message, which may hold dots of its own)."""
        value = data
        for part in key.split('.'):
            if not isinstance(value, Mapping) or part not in value:
                if default is not ...:
                    return default
                raise self.error(f'missing key {at + "." if at else ""}{key}')
            value = value[part]
        return value

    def number(self, value: Any, key: str, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (positive and value <= 0):
            raise self.error(f'{key} must be a {"positive " if positive else ""}number, got {value!r}')
        return float(value)

    def integer(self, value: Any, key: str, low: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(f'{key} must be an integer >= {low}, got {value!r}')
        return value

    def numbers(self, value: Any, size: int, key: str, per: str = 'joint', broadcast: bool = True) -> tuple[float, ...]:
        """`size` finite numbers (one number is broadcast where `broadcast`)."""
        if broadcast and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value] * size
        if not isinstance(value, (list, tuple)):
            raise self.error(f'{key} must be {"a number or " if broadcast else ""}a list of {size} numbers (one per '
                             f'{per}), got {value!r}')
        if len(value) != size:
            raise self.error(f'{key} has {len(value)} values, expected {size} (one per {per})')
        return tuple(self.number(v, f'{key}[{i}]') for i, v in enumerate(value))

    def names(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.error(f'{key} must be a non-empty list of names, got {value!r}')
        twice = sorted({v for v in value if list(value).count(v) > 1})
        if twice:
            raise self.error(f'{key} names {twice} twice')
        return tuple(value)

    def clip(self, value: Any, key: str) -> tuple[float, float] | None:
        """[low, high] or null; an infinite bound on both sides (no clip) is None."""
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != 2 or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) \
                or not value[0] < value[1]:
            raise self.error(f'{key} must be [low, high] with low < high (or null), got {value!r}')
        if math.isinf(value[0]) and math.isinf(value[1]):
            return None
        return float(value[0]), float(value[1])


def _term_size(name: str, n_joints: int, n_actions: int) -> tuple[int, str]:
    kind = TERMS[name].elements
    if isinstance(kind, tuple):
        return len(kind), 'element'
    return {'xyz': (3, 'axis'), 'command': (3, 'command element'), 'quat': (4, 'element'),
            'joints': (n_joints, 'joint'), 'actions': (n_actions, 'action joint')}.get(kind, (0, kind))


def _known(name: str, source_names: Mapping[str, Any], f: _File, key: str, what: str = 'observation term') -> str:
    """Our term for a source's term name (its own mapping, or one of our names)."""
    if name in source_names:
        mapped = source_names[name]
        return mapped[0] if isinstance(mapped, tuple) else mapped
    if name in TERMS:
        return name
    raise f.error(f'{key}: unknown {what} {name!r}; known terms are {sorted(set(source_names) | set(TERMS))}')


def _group(f: _File, specs: Sequence[dict[str, Any]], joints: Sequence[str], actions: Sequence[str],
           layout: str) -> ObsGroup:
    """An ObsGroup from term specs {name, key, scale, clip, history}; each scale checked per element."""
    terms = []
    seen: dict[str, str] = {}
    for s in specs:
        name, key = s['name'], s['key']
        if name in seen:
            raise f.error(f'{key} and {seen[name]} are both the term {name!r}; each term once')
        seen[name] = key
        size, per = _term_size(name, len(joints), len(actions))
        if size == 0:
            raise f.error(f'{key}: term {name!r} needs its {per} named, which this file cannot do')
        scale = f.numbers(1.0 if s.get('scale') is None else s['scale'], size, f'{key}.scale', per)
        terms.append(make_term(name, list(scale), 0.0, s.get('clip'), s.get('history', 1),
                               {'joints': len(joints), 'actions': len(actions)}, f'{f.name}: {key}'))
    group = ObsGroup(tuple(terms), tuple(joints), layout, actions=tuple(actions) if tuple(actions) != tuple(joints)
                     else ())
    group.check(f.name)
    return group


def _uniform_clip(f: _File, lows: Sequence[float], highs: Sequence[float], key: str) -> tuple[float, float] | None:
    """One action clip for every joint (the contract's form)."""
    if len(set(lows)) > 1 or len(set(highs)) > 1:
        raise f.error(f'{key}: the action clip differs between joints (low {list(lows)}, high {list(highs)}); a '
                      f'contract clips every joint alike')
    return f.clip([lows[0], highs[0]], key)


def _step_dt_from(f: _File, dt: Any, decimation: Any, dt_key: str, decimation_key: str) -> float:
    return f.number(dt, dt_key, positive=True) * f.integer(decimation, decimation_key, low=1)


def _ranges(f: _File, ranges: Any, key: str) -> dict[str, tuple[float, float]]:
    if ranges is None:
        return {}
    if not isinstance(ranges, Mapping):
        raise f.error(f'{key} must be a mapping of ranges, got {ranges!r}')
    out = {}
    for name in COMMAND_RANGE_KEYS:
        value = ranges.get(name)
        if value is None:
            continue
        if not isinstance(value, (list, tuple)) or len(value) != 2 or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) or value[0] > value[1]:
            raise f.error(f'{key}.{name} must be [low, high], got {value!r}')
        out[name] = (float(value[0]), float(value[1]))
    return out


def _finish(contract: PolicyContract) -> PolicyContract:
    contract.check()
    return contract


# ---------------------------------------------------------------- mjlab ONNX metadata
def _split_top(text: str) -> list[str]:
    """Comma-separated items, commas inside [...] or (...) kept (mjlab writes a list of lists as
    '[-inf, inf],[-inf, inf]')."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in '[(':
            depth += 1
        elif c in '])':
            depth -= 1
        elif c == ',' and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return [] if items == [''] else items


def _meta_number(f: _File, text: str, key: str) -> float | list[float]:
    text = text.strip()
    if text.startswith(('[', '(')):
        return [_meta_number(f, t, key) for t in _split_top(text[1:-1])]
    try:
        return float(text)
    except ValueError:
        raise f.error(f'metadata {key}: {text!r} is not a number') from None


def _meta_list(f: _File, meta: Mapping[str, str], key: str) -> list:
    return [_meta_number(f, t, key) for t in _split_top(meta[key])]


def contract_from_mjlab_metadata(metadata: Mapping[str, str], source: str, *, step_dt: float | None = None,
                                 term_scales: Mapping[str, Any] | None = None,
                                 term_clips: Mapping[str, Any] | None = None,
                                 term_history: int | Mapping[str, int] | None = None,
                                 command_ranges: Mapping[str, Sequence[float]] | None = None) -> PolicyContract:
    """A contract from mjlab's ONNX metadata (see the module docstring for the keys). `term_scales`,
    `term_clips`, `term_history` (one int for all terms, or by term) are keyed by mjlab's or our
    term names and fill what mjlab does not record; they may not contradict keys the metadata has."""
    f = _File(source)
    for key in ('joint_names', 'default_joint_pos', 'action_scale', 'observation_names'):
        if key not in metadata:
            raise f.error(f'missing metadata key {key} (mjlab writes joint_names, joint_stiffness, joint_damping, '
                          f'default_joint_pos, action_scale, observation_names)')
    joints = f.names(_split_top(metadata['joint_names']), 'metadata joint_names')
    n = len(joints)

    def per_joint(*keys: str, required: bool = True, broadcast: bool = False) -> tuple[float, ...] | None:
        for key in keys:
            if key in metadata:
                values = _meta_list(f, metadata, key)
                if broadcast and len(values) == 1:   # mjlab writes a scalar action scale as one number
                    values = values[0]
                return f.numbers(values, n, f'metadata {key}', broadcast=broadcast)
        if required:
            raise f.error(f'missing metadata key {keys[0]}')
        return None

    stiffness = per_joint('joint_stiffness', 'stiffness', required=False)
    damping = per_joint('joint_damping', 'damping', required=False)
    default = per_joint('default_joint_pos')
    scale = per_joint('action_scale', broadcast=True)
    if 'step_dt' in metadata:
        dt = f.number(_meta_number(f, metadata['step_dt'], 'step_dt'), 'metadata step_dt', positive=True)
        if step_dt is not None and not math.isclose(dt, step_dt, rel_tol=1e-6):
            raise f.error(f'metadata step_dt is {dt} s, step_dt={step_dt} was given')
    elif step_dt is None:
        raise f.error('metadata has no step_dt (mjlab does not record the policy period); pass step_dt=')
    else:
        dt = f.number(step_dt, 'step_dt', positive=True)

    source_names = _split_top(metadata['observation_names'])
    if not source_names:
        raise f.error('metadata observation_names is empty')
    names = [_known(s, MJLAB_TERMS, f, 'metadata observation_names') for s in source_names]
    count = len(names)

    def per_term(key: str, override: Any, override_name: str) -> list | None:
        if key not in metadata:
            return None
        if override is not None:
            raise f.error(f'metadata has {key}; {override_name}= would contradict it')
        values = _meta_list(f, metadata, key) if key != 'observation_terms_flatten_history_dim' else \
            _split_top(metadata[key])
        if len(values) != count:
            raise f.error(f'metadata {key} has {len(values)} values, expected {count} (one per observation term)')
        return values

    scales = per_term('observation_terms_scale', term_scales, 'term_scales')
    clips = per_term('observation_terms_clip', term_clips, 'term_clips')
    histories = per_term('observation_terms_history_length', term_history, 'term_history')
    flatten = per_term('observation_terms_flatten_history_dim', None, '')

    def by_term(override: Any, what: str) -> dict[str, Any]:
        if override is None:
            return {}
        if not isinstance(override, Mapping):
            raise f.error(f'{what} must map term names to values, got {override!r}')
        out = {}
        for key, value in override.items():
            term = _known(key, MJLAB_TERMS, f, what)
            if term not in names:
                raise f.error(f'{what}: term {key!r} is not among the observation terms {source_names}')
            out[term] = value
        return out

    scale_by, clip_by = by_term(term_scales, 'term_scales'), by_term(term_clips, 'term_clips')
    history_by = {} if isinstance(term_history, int) else by_term(term_history, 'term_history')
    specs = []
    for i, (name, raw) in enumerate(zip(names, source_names)):
        key = f'observation {raw!r}'
        history = term_history if isinstance(term_history, int) else history_by.get(name, 1)
        if histories is not None:
            value = histories[i]
            if not isinstance(value, float) or not value.is_integer() or value < 0:
                raise f.error(f'metadata observation_terms_history_length[{i}] must be an integer >= 0, got {value!r}')
            history = max(1, int(value))
        if flatten is not None and history > 1 and flatten[i].strip().lower() in ('false', '0'):
            raise f.error(f'metadata observation_terms_flatten_history_dim[{i}] is {flatten[i]} for {raw!r} with '
                          f'history {history}: an unflattened history has no place in one observation vector')
        specs.append({'name': name, 'key': key, 'history': history,
                      'scale': scales[i] if scales is not None else scale_by.get(name),
                      'clip': f.clip(clips[i], f'metadata observation_terms_clip[{i}]') if clips is not None
                      else clip_by.get(name)})
    ranges = {k: (float(v[0]), float(v[1])) for k, v in (command_ranges or {}).items()}
    return _finish(PolicyContract(
        observation=_group(f, specs, joints, joints, TERM_MAJOR), joints=joints, default_joint_pos=default,
        action_scale=scale, action_offset=default, stiffness=stiffness, damping=damping, step_dt=dt,
        command_ranges=ranges, source=f.name))


def _onnx_input_width(model) -> tuple[str, int] | None:
    """(name, width) of the model's one observation input, where it has one of a fixed width."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField('dim_value') or dims[1].dim_value <= 0:
        return None
    return inputs[0].name, int(dims[1].dim_value)


def contract_from_onnx(path: str | Path, **overrides: Any) -> PolicyContract:
    """The contract an ONNX policy carries: the `distill_ros_contract` metadata key if present (no
    overrides), else mjlab's metadata (`contract_from_mjlab_metadata`'s overrides)."""
    model = _load_onnx(path)
    meta = {p.key: p.value for p in model.metadata_props}
    f = _File(path)
    if ONNX_CONTRACT_KEY in meta:
        if overrides:
            raise f.error(f'holds a distill_ros contract (metadata {ONNX_CONTRACT_KEY}), which takes no overrides; '
                          f'got {sorted(overrides)}')
        try:
            data = json.loads(meta[ONNX_CONTRACT_KEY])
        except ValueError as exc:
            raise f.error(f'metadata {ONNX_CONTRACT_KEY} is not JSON: {exc}') from None
        contract = PolicyContract.from_json(data, f'{f.name}: metadata {ONNX_CONTRACT_KEY}')
    elif 'joint_names' in meta or 'observation_names' in meta:
        _check_overrides(contract_from_mjlab_metadata, overrides, f, 'an mjlab ONNX export', skip=2)
        contract = contract_from_mjlab_metadata(meta, f.name, **overrides)
    else:
        raise f.error(f'its metadata holds no contract: neither {ONNX_CONTRACT_KEY} nor mjlab\'s joint_names and '
                      f'observation_names (keys: {sorted(meta)})')
    width = _onnx_input_width(model)
    size = contract.observation.spec().size
    if width is not None and width[1] != size:
        terms = [t.name + (f' x{t.history}' if t.history > 1 else '') for t in contract.observation.terms]
        raise f.error(f'the model\'s input {width[0]!r} takes {width[1]} values, the contract\'s observation has '
                      f'{size} ({", ".join(terms)}): a history or a term differs')
    return contract


# ---------------------------------------------------------------- unitree_rl_lab deploy.yaml
def contract_from_deploy_yaml(path: str | Path, *, sdk_joints: Sequence[str] | None = None,
                              _data: Any = None) -> PolicyContract:
    """A contract from unitree_rl_lab's `params/deploy.yaml` (keys in the module docstring).
    `sdk_joints`: the SDK's motor names in motor order (`''` for a motor slot without a joint), needed
    because the file names no joints; read from a sibling env.yaml's `scene.robot.joint_sdk_names`
    when not given."""
    f = _File(path)
    data = load_yaml(path) if _data is None else _data
    if not isinstance(data, Mapping):
        raise f.error(f'expected a mapping, got {type(data).__name__}')
    ids = f.get(data, 'joint_ids_map')
    if not isinstance(ids, list) or not ids or not all(isinstance(i, (int, float)) and not isinstance(i, bool)
                                                       and float(i).is_integer() and i >= 0 for i in ids):
        raise f.error(f'joint_ids_map must be a list of SDK motor indices, got {ids!r}')
    ids = [int(i) for i in ids]
    if len(set(ids)) != len(ids):
        raise f.error(f'joint_ids_map names SDK motors {sorted({i for i in ids if ids.count(i) > 1})} twice')
    n = len(ids)
    where_names = 'sdk_joints'
    if sdk_joints is None:
        env = Path(path).with_name('env.yaml')
        if env.is_file():
            sdk_joints = _File(env).get(load_yaml(env), 'scene.robot.joint_sdk_names', None)
            where_names = f'{env}: scene.robot.joint_sdk_names'
        if sdk_joints is None:
            raise f.error('names no joints (joint_ids_map holds SDK motor indices): pass sdk_joints= (the SDK\'s '
                          'motor names in motor order), or keep the run\'s env.yaml with scene.robot.joint_sdk_names '
                          'beside it')
    if not isinstance(sdk_joints, (list, tuple)) or not all(isinstance(j, str) for j in sdk_joints):
        raise f.error(f'{where_names} must be a list of motor names, got {sdk_joints!r}')
    if max(ids) >= len(sdk_joints):
        raise f.error(f'joint_ids_map reaches SDK motor {max(ids)}, {where_names} names {len(sdk_joints)} motors')
    joints = tuple(sdk_joints[i] for i in ids)
    unnamed = [ids[i] for i, j in enumerate(joints) if not j]
    if unnamed:
        raise f.error(f'joint_ids_map drives SDK motors {unnamed}, which {where_names} leaves unnamed')
    f.names(list(joints), 'joint names')

    def sdk_ordered(key: str) -> tuple[float, ...]:
        values = f.get(data, key)
        if not isinstance(values, list):
            raise f.error(f'{key} must be a list of numbers (SDK motor order), got {values!r}')
        if len(values) > max(ids):     # one per SDK motor (unitree_rl_lab's exporter)
            return tuple(f.number(values[i], f'{key}[{i}]') for i in ids)
        if len(values) == n:           # the policy's motors only, in SDK motor order
            rank = {motor: k for k, motor in enumerate(sorted(ids))}
            return tuple(f.number(values[rank[i]], f'{key}[{rank[i]}]') for i in ids)
        raise f.error(f'{key} has {len(values)} values, expected one per SDK motor (at least {max(ids) + 1}) or one '
                      f'per policy joint ({n})')

    stiffness, damping = sdk_ordered('stiffness'), sdk_ordered('damping')
    default = f.numbers(f.get(data, 'default_joint_pos'), n, 'default_joint_pos', broadcast=False)
    step_dt = f.number(f.get(data, 'step_dt'), 'step_dt', positive=True)
    actions = f.get(data, 'actions')
    if not isinstance(actions, Mapping) or set(actions) != {'JointPositionAction'}:
        got = sorted(actions) if isinstance(actions, Mapping) else actions
        raise f.error(f'actions must hold one JointPositionAction, got {got!r}')
    act = actions['JointPositionAction']
    key = 'actions.JointPositionAction'
    if f.get(data, f'{key}.joint_ids', None) is not None:
        raise f.error(f'{key}.joint_ids is {act["joint_ids"]!r}: an action over some joints only is not supported')
    scale = f.numbers(f.get(data, f'{key}.scale'), n, f'{key}.scale')
    offset = f.numbers(f.get(data, f'{key}.offset', 0.0), n, f'{key}.offset')
    clip = act.get('clip')
    action_clip = None
    if clip is not None:
        if not isinstance(clip, list) or len(clip) != n or not all(isinstance(c, list) and len(c) == 2 for c in clip):
            raise f.error(f'{key}.clip must be null or one [low, high] per joint ({n}), got {clip!r}')
        action_clip = _uniform_clip(f, [c[0] for c in clip], [c[1] for c in clip], f'{key}.clip')
    observations = f.get(data, 'observations')
    if not isinstance(observations, Mapping) or not observations:
        raise f.error(f'observations must map term names to their settings, got {observations!r}')
    specs = []
    for raw, cfg in observations.items():
        okey = f'observations.{raw}'
        if not isinstance(cfg, Mapping):
            raise f.error(f'{okey} must be a mapping (params, clip, scale, history_length), got {cfg!r}')
        name = _known(raw, DEPLOY_TERMS, f, okey)
        params = cfg.get('params') or {}
        if isinstance(params, Mapping) and 'asset_cfg' in params:
            raise f.error(f'{okey}.params.asset_cfg: a term over some joints only is not supported')
        specs.append({'name': name, 'key': okey, 'scale': cfg.get('scale'),
                      'clip': f.clip(cfg.get('clip'), f'{okey}.clip'),
                      'history': max(1, f.integer(cfg.get('history_length', 1), f'{okey}.history_length'))})
    ranges = _ranges(f, f.get(data, 'commands.base_velocity.ranges', None), 'commands.base_velocity.ranges')
    return _finish(PolicyContract(
        observation=_group(f, specs, joints, joints, TERM_MAJOR), joints=joints, default_joint_pos=default,
        action_scale=scale, action_offset=offset, stiffness=stiffness, damping=damping, action_clip=action_clip,
        step_dt=step_dt, command_ranges=ranges, source=f.name))


# ---------------------------------------------------------------- rl_sar config.yaml (+ base.yaml)
_UNSET: Any = object()


def _rl_sar_body(f: _File, data: Any) -> tuple[str | None, Mapping[str, Any]]:
    """(top key, settings): rl_sar keeps a file's settings under one key ('go2/robot_lab')."""
    if isinstance(data, Mapping) and len(data) == 1:
        (top, body), = data.items()
        if isinstance(body, Mapping):
            return str(top), body
    if isinstance(data, Mapping):
        return None, data
    raise f.error(f'expected a mapping, got {type(data).__name__}')


def contract_from_rl_sar(path: str | Path, *, base: str | Path | None = None, clip_obs: Any = _UNSET,
                         _data: Any = None) -> PolicyContract:
    """A contract from an rl_sar policy `config.yaml` merged over its robot's `base.yaml` (`base`, or
    `../../base.yaml` when it exists; config.yaml's keys win). `clip_obs` replaces the file's
    (None: no clip; for a term whose scale differs between its elements rl_sar's clip after scaling
    has no per-term equivalent and is refused unless dropped)."""
    f = _File(path)
    top, body = _rl_sar_body(f, load_yaml(path) if _data is None else _data)
    base_path = Path(base) if base is not None else Path(path).resolve().parent.parent / 'base.yaml'
    merged: dict[str, Any] = {}
    files = f.name
    if base is not None or (base_path.is_file() and base_path.resolve() != Path(path).resolve()):
        _, base_body = _rl_sar_body(_File(base_path), load_yaml(base_path))
        merged.update(base_body)
        files = f'{f.name} (over {base_path})'
    merged.update(body)
    g = _File(files)
    names = g.get(merged, 'observations')
    if not isinstance(names, list) or not names or not all(isinstance(o, str) for o in names):
        raise g.error(f'observations must be a list of rl_sar observation names, got {names!r}')
    joint_names = g.names(g.get(merged, 'joint_names'), 'joint_names')
    mapping = merged.get('joint_mapping')
    if mapping is not None:
        if not isinstance(mapping, list) or sorted(mapping) != sorted(set(mapping)) or \
                not all(isinstance(i, int) and 0 <= i < len(joint_names) for i in mapping):
            raise g.error(f'joint_mapping must list distinct indices into joint_names (0..{len(joint_names) - 1}), '
                          f'got {mapping!r}')
        joints = tuple(joint_names[i] for i in mapping)
    else:
        joints = joint_names
    n = len(joints)
    dofs = merged.get('num_of_dofs')
    if dofs is not None and dofs != n:
        raise g.error(f'num_of_dofs is {dofs}, joint_names{"/joint_mapping" if mapping is not None else ""} give {n}')
    if merged.get('wheel_indices'):
        raise g.error(f'wheel_indices {merged["wheel_indices"]}: velocity-driven wheels are not supported')
    step_dt = _step_dt_from(g, g.get(merged, 'dt'), g.get(merged, 'decimation'), 'dt', 'decimation')
    history_steps = merged.get('observations_history') or []
    if not isinstance(history_steps, list) or not all(isinstance(s, int) for s in history_steps):
        raise g.error(f'observations_history must be a list of step indices, got {history_steps!r}')
    history = len(history_steps) or 1
    if history_steps and history_steps != list(range(history - 1, -1, -1)):
        raise g.error(f'observations_history {history_steps} (0 = newest) cannot be represented: a contract stacks '
                      f'every step, oldest first, [{", ".join(str(s) for s in range(history - 1, -1, -1))}]')
    priority = merged.get('observations_history_priority', 'time')
    if priority not in ('time', 'term'):
        raise g.error(f'observations_history_priority must be "time" or "term", got {priority!r}')
    if clip_obs is _UNSET:
        clip = None if merged.get('clip_obs') is None else g.number(merged['clip_obs'], 'clip_obs', positive=True)
    else:
        clip = None if clip_obs is None else g.number(clip_obs, 'clip_obs=', positive=True)
    specs = []
    for i, raw in enumerate(names):
        name = _known(raw, RL_SAR_TERMS, g, f'observations[{i}]', 'rl_sar observation')
        scale_key = RL_SAR_TERMS.get(raw, (None, None))[1]
        size, per = _term_size(name, n, n)
        scale = g.numbers(g.get(merged, scale_key), size, scale_key, per) if scale_key else (1.0,) * size
        term_clip = None
        if clip is not None:
            if len(set(scale)) > 1 or scale[0] <= 0:
                raise g.error(f'clip_obs {clip} clips {raw} after its scale {scale_key} {list(scale)}, which differs '
                              f'between elements: no clip before scaling equals it (pass clip_obs=None to drop it)')
            term_clip = (-clip / scale[0], clip / scale[0])
        specs.append({'name': name, 'key': f'observations[{i}] ({raw})', 'scale': list(scale), 'clip': term_clip,
                      'history': history})
    group = _group(g, specs, joints, joints, FRAME_MAJOR if priority == 'time' else TERM_MAJOR)
    width = merged.get('num_observations')
    frame = sum(group.element_count(t) for t in group.terms)
    if width is not None and width != frame:
        raise g.error(f'num_observations is {width}, the observations {names} give {frame} per step')
    default = g.numbers(g.get(merged, 'default_dof_pos'), n, 'default_dof_pos', broadcast=False)
    action_clip = None
    if 'clip_actions_lower' in merged or 'clip_actions_upper' in merged:
        lows = g.numbers(g.get(merged, 'clip_actions_lower'), n, 'clip_actions_lower')
        highs = g.numbers(g.get(merged, 'clip_actions_upper'), n, 'clip_actions_upper')
        action_clip = _uniform_clip(g, lows, highs, 'clip_actions_lower/clip_actions_upper')
    return _finish(PolicyContract(
        observation=group, joints=joints, default_joint_pos=default,
        action_scale=g.numbers(g.get(merged, 'action_scale'), n, 'action_scale'), action_offset=default,
        stiffness=g.numbers(g.get(merged, 'rl_kp'), n, 'rl_kp'), damping=g.numbers(g.get(merged, 'rl_kd'), n, 'rl_kd'),
        action_clip=action_clip, step_dt=step_dt, source=f.name))


# ---------------------------------------------------------------- Isaac Lab env.yaml
def _resolve_joints(f: _File, exprs: Any, joints: Sequence[str], key: str, preserve_order: bool = False) -> list[str]:
    """The joints a list of regular expressions selects, as Isaac Lab's `resolve_matching_names`:
    full matches; in `joints`' order, or the expressions' order where `preserve_order`."""
    if isinstance(exprs, str):
        exprs = [exprs]
    if not isinstance(exprs, list) or not exprs or not all(isinstance(e, str) for e in exprs):
        raise f.error(f'{key} must be a joint name expression or a list of them, got {exprs!r}')
    hits: dict[str, int] = {}
    for joint in joints:
        which = [k for k, e in enumerate(exprs) if _fullmatch(f, e, joint, key)]
        if len(which) > 1:
            raise f.error(f'{key}: joint {joint!r} matches several expressions {[exprs[k] for k in which]}')
        if which:
            hits[joint] = which[0]
    unmatched = [e for k, e in enumerate(exprs) if k not in hits.values()]
    if unmatched:
        raise f.error(f'{key}: {unmatched} match none of the joints {list(joints)}')
    order = list(hits)
    if preserve_order:
        order.sort(key=lambda j: hits[j])
    return order


def _fullmatch(f: _File, expr: str, name: str, key: str) -> bool:
    try:
        return re.fullmatch(expr, name) is not None
    except re.error as exc:
        raise f.error(f'{key}: {expr!r} is not a regular expression: {exc}') from None


def _by_regex(f: _File, value: Any, joints: Sequence[str], key: str, default: Any = _UNSET) -> dict[str, Any]:
    """A number (every joint) or {regex: value} resolved over `joints`; a joint no key matches gets
    `default`, or is refused when there is none."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {j: value for j in joints}
    if not isinstance(value, Mapping) or not value:
        raise f.error(f'{key} must be a number or a mapping of joint expressions to values, got {value!r}')
    exprs = [str(e) for e in value]
    out: dict[str, Any] = {}
    for joint in joints:
        which = [e for e in exprs if _fullmatch(f, e, joint, key)]
        if len(which) > 1:
            raise f.error(f'{key}: joint {joint!r} matches several expressions {which}')
        if which:
            out[joint] = value[which[0]]
        elif default is _UNSET:
            raise f.error(f'{key}: no expression matches joint {joint!r} (expressions {exprs})')
        else:
            out[joint] = default
    unmatched = [e for e in exprs if not any(_fullmatch(f, e, j, key) for j in joints)]
    if unmatched:
        raise f.error(f'{key}: {unmatched} match none of the joints {list(joints)}')
    return out


def _func_name(f: _File, func: Any, key: str) -> str:
    if not isinstance(func, str) or not func:
        raise f.error(f'{key} must name a function ("module:function"), got {func!r}')
    return func.rsplit(':', 1)[-1].rsplit('.', 1)[-1]


def contract_from_isaaclab_env(path: str | Path, *, joints: Sequence[str] | None = None, group: str = 'policy',
                               _data: Any = None) -> PolicyContract:
    """A contract from the `params/env.yaml` an Isaac Lab run dumps (keys in the module docstring).
    `joints`: the articulation's joint names in Isaac Lab's order (`asset.data.joint_names`), which
    the file does not hold; `group`: the observation group the policy reads."""
    f = _File(path)
    data = load_yaml(path) if _data is None else _data
    if not isinstance(data, Mapping):
        raise f.error(f'expected a mapping, got {type(data).__name__}')
    if joints is None:
        raise f.error('holds joint name expressions, not the joint order: pass joints= (the articulation\'s joint '
                      'names in Isaac Lab\'s order, asset.data.joint_names)')
    all_joints = list(_File('joints').names(list(joints), 'joints='))
    step_dt = _step_dt_from(f, f.get(data, 'sim.dt'), f.get(data, 'decimation'), 'sim.dt', 'decimation')

    # the action
    actions = f.get(data, 'actions')
    if not isinstance(actions, Mapping):
        raise f.error(f'actions must map action terms to their settings, got {actions!r}')
    terms = {k: v for k, v in actions.items() if v is not None}
    if len(terms) != 1:
        raise f.error(f'actions has terms {sorted(terms)}; a contract has one joint position action')
    (action_name, act), = terms.items()
    akey = f'actions.{action_name}'
    cls = str(act.get('class_type', '')) if isinstance(act, Mapping) else ''
    if not cls.endswith('JointPositionAction') or 'Relative' in cls.rsplit(':', 1)[-1]:
        raise f.error(f'{akey}.class_type is {cls or None!r}; only a JointPositionAction is supported')
    action_joints = _resolve_joints(f, f.get(act, 'joint_names', at=akey), all_joints, f'{akey}.joint_names',
                                   bool(act.get('preserve_order', False)))
    init = f.get(data, 'scene.robot.init_state.joint_pos')
    default_by = _by_regex(f, init, all_joints, 'scene.robot.init_state.joint_pos', default=0.0)
    default = tuple(f.number(default_by[j], f'scene.robot.init_state.joint_pos ({j})') for j in action_joints)
    scale_by = _by_regex(f, act.get('scale', 1.0), action_joints, f'{akey}.scale', default=1.0)
    scale = tuple(f.number(scale_by[j], f'{akey}.scale ({j})') for j in action_joints)
    if act.get('use_default_offset', False):
        offset = default
    else:
        offset_by = _by_regex(f, act.get('offset', 0.0), action_joints, f'{akey}.offset', default=0.0)
        offset = tuple(f.number(offset_by[j], f'{akey}.offset ({j})') for j in action_joints)
    action_clip = None
    if act.get('clip') is not None:
        clip_by = _by_regex(f, act['clip'], action_joints, f'{akey}.clip', default=None)
        unclipped = [j for j in action_joints if clip_by[j] is None]
        if unclipped:
            raise f.error(f'{akey}.clip leaves joints {unclipped} unclipped; a contract clips every joint alike')
        pairs = [f.clip(clip_by[j], f'{akey}.clip ({j})') or (-math.inf, math.inf) for j in action_joints]
        action_clip = _uniform_clip(f, [p[0] for p in pairs], [p[1] for p in pairs], f'{akey}.clip')

    # the PD gains of the action's joints, from the actuator groups
    actuators = f.get(data, 'scene.robot.actuators')
    if not isinstance(actuators, Mapping):
        raise f.error(f'scene.robot.actuators must map actuator groups to their settings, got {actuators!r}')
    gains: dict[str, dict[str, float]] = {'stiffness': {}, 'damping': {}}
    owner: dict[str, str] = {}
    for name, cfg in actuators.items():
        gkey = f'scene.robot.actuators.{name}'
        if not isinstance(cfg, Mapping):
            raise f.error(f'{gkey} must be a mapping, got {cfg!r}')
        members = _resolve_joints(f, f.get(cfg, 'joint_names_expr', at=gkey), all_joints, f'{gkey}.joint_names_expr')
        for j in members:
            if j in owner:
                raise f.error(f'{gkey}.joint_names_expr: joint {j!r} is already driven by actuator group {owner[j]!r}')
            owner[j] = name
        for gain in ('stiffness', 'damping'):
            value = f.get(cfg, gain, at=gkey)
            if value is None:
                raise f.error(f'{gkey}.{gain} is null (the USD file\'s value, which this file does not hold)')
            for j, v in _by_regex(f, value, members, f'{gkey}.{gain}').items():
                gains[gain][j] = f.number(v, f'{gkey}.{gain} ({j})')
    undriven = [j for j in action_joints if j not in owner]
    if undriven:
        raise f.error(f'scene.robot.actuators: no actuator group drives the action\'s joints {undriven}')

    # the observation group
    obs = f.get(f.get(data, 'observations'), group, at='observations')
    okey = f'observations.{group}'
    if not isinstance(obs, Mapping):
        raise f.error(f'{okey} must be an observation group, got {obs!r}')
    if obs.get('concatenate_terms', True) is False:
        raise f.error(f'{okey}.concatenate_terms is false: a contract is one observation vector')
    group_history = obs.get('history_length')
    group_flatten = obs.get('flatten_history_dim', True)
    commands = data.get('commands') or {}
    specs, obs_joints, command_ranges = [], None, {}
    group_keys = {'concatenate_terms', 'concatenate_dim', 'enable_corruption', 'history_length', 'flatten_history_dim'}
    for raw, cfg in obs.items():
        if raw in group_keys or cfg is None:
            continue
        tkey = f'{okey}.{raw}'
        if not isinstance(cfg, Mapping) or 'func' not in cfg:
            raise f.error(f'{tkey} must be an observation term with a func, got {cfg!r}')
        func = _func_name(f, cfg['func'], f'{tkey}.func')
        if func not in ISAACLAB_FUNCS:
            raise f.error(f'{tkey}.func: unknown observation term {func!r} ({cfg["func"]}); known terms are '
                          f'{sorted(ISAACLAB_FUNCS)}')
        name = ISAACLAB_FUNCS[func]
        if cfg.get('modifiers'):
            raise f.error(f'{tkey}.modifiers {cfg["modifiers"]!r}: observation modifiers are not supported')
        params = cfg.get('params') or {}
        if TERMS[name].elements == 'joints':
            exprs = f.get(params, 'asset_cfg.joint_names', None) if isinstance(params, Mapping) else None
            selected = all_joints if exprs is None else _resolve_joints(
                f, exprs, all_joints, f'{tkey}.params.asset_cfg.joint_names',
                bool(f.get(params, 'asset_cfg.preserve_order', False)))
            if obs_joints is not None and selected != obs_joints:
                raise f.error(f'{tkey} is over joints {selected}, an earlier joint term over {obs_joints}; a contract '
                              f'has one joint list for its terms')
            obs_joints = selected
        if name == 'last_action' and isinstance(params, Mapping) and \
                params.get('action_name') not in (None, action_name):
            raise f.error(f'{tkey}.params.action_name is {params["action_name"]!r}, the action is {action_name!r}')
        if name == 'velocity_command':
            command = params.get('command_name') if isinstance(params, Mapping) else None
            entry = commands.get(command) if isinstance(commands, Mapping) and command else None
            ranges = entry.get('ranges') if isinstance(entry, Mapping) else None
            if not isinstance(ranges, Mapping) or 'lin_vel_x' not in ranges:
                raise f.error(f'{tkey}.params.command_name {command!r}: commands.{command} is no velocity command '
                              f'(no ranges.lin_vel_x)')
            command_ranges = _ranges(f, ranges, f'commands.{command}.ranges')
        history = cfg.get('history_length', 0) if group_history is None else group_history
        flatten = cfg.get('flatten_history_dim', True) if group_history is None else group_flatten
        history = max(1, f.integer(history, f'{tkey}.history_length' if group_history is None
                                   else f'{okey}.history_length'))
        if history > 1 and flatten is False:
            raise f.error(f'{tkey}: history {history} with flatten_history_dim false has no place in one observation '
                          f'vector')
        specs.append({'name': name, 'key': tkey, 'scale': cfg.get('scale'),
                      'clip': f.clip(cfg.get('clip'), f'{tkey}.clip'), 'history': history})
    if not specs:
        raise f.error(f'{okey} has no observation terms')
    obs_joints = action_joints if obs_joints is None else obs_joints
    outside = [j for j in obs_joints if j not in action_joints]
    if outside and any(TERMS[s['name']].relative and TERMS[s['name']].raw == 'joint_pos' for s in specs):
        raise f.error(f'{okey}: joint_pos_rel is over joints {outside} the action does not drive; the contract holds '
                      f'a default pose for the action\'s joints only')
    return _finish(PolicyContract(
        observation=_group(f, specs, obs_joints, action_joints, TERM_MAJOR), joints=tuple(action_joints),
        default_joint_pos=default, action_scale=scale, action_offset=offset,
        stiffness=tuple(gains['stiffness'][j] for j in action_joints),
        damping=tuple(gains['damping'][j] for j in action_joints), action_clip=action_clip, step_dt=step_dt,
        command_ranges=command_ranges, source=f.name))


# ---------------------------------------------------------------- dispatch and writing
SOURCES = ('distill_ros', 'mjlab_onnx', 'deploy_yaml', 'rl_sar', 'isaaclab_env')


def _yaml_source(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return None
    if data.get('format') == CONTRACT_FORMAT:
        return 'distill_ros'
    if 'joint_ids_map' in data or (isinstance(data.get('actions'), Mapping)
                                   and 'JointPositionAction' in data['actions'] and 'step_dt' in data):
        return 'deploy_yaml'
    policy = data.get('observations', {}).get('policy') if isinstance(data.get('observations'), Mapping) else None
    if isinstance(policy, Mapping) and any(isinstance(v, Mapping) and 'func' in v for v in policy.values()):
        return 'isaaclab_env'
    body = next(iter(data.values())) if len(data) == 1 and isinstance(next(iter(data.values())), Mapping) else data
    if 'rl_kp' in body or (isinstance(body.get('observations'), list) and ('dt' in body or 'decimation' in body
                                                                          or 'num_observations' in body)):
        return 'rl_sar'
    return None


def detect_source(path: str | Path) -> str:
    """Which of `SOURCES` a file is (refused when none)."""
    if Path(path).suffix.lower() == '.onnx':
        meta = read_onnx_metadata(path)
        if ONNX_CONTRACT_KEY in meta:
            return 'distill_ros'
        if 'joint_names' in meta or 'observation_names' in meta:
            return 'mjlab_onnx'
        raise ContractError(f'{path}: its metadata holds no contract: neither {ONNX_CONTRACT_KEY} nor mjlab\'s '
                            f'joint_names and observation_names (keys: {sorted(meta)})')
    source = _yaml_source(load_yaml(path))
    if source is None:
        raise ContractError(f'{path}: not a contract file this reads: expected a distill_ros contract (format: '
                            f'{CONTRACT_FORMAT}), a unitree_rl_lab deploy.yaml (joint_ids_map), an rl_sar '
                            f'config.yaml (observations list, rl_kp) or an Isaac Lab env.yaml (observations.policy '
                            f'terms with func)')
    return source


def _check_overrides(fn: Callable, overrides: Mapping[str, Any], f: _File, kind: str, skip: int = 1) -> None:
    params = [p for p in list(inspect.signature(fn).parameters.values())[skip:]
              if p.kind == p.KEYWORD_ONLY and not p.name.startswith('_')]
    unknown = sorted(set(overrides) - {p.name for p in params})
    if unknown:
        raise f.error(f'{unknown} cannot be given for {kind}; it takes {[p.name for p in params] or "none"}')


def load_contract(path: str | Path, **overrides: Any) -> PolicyContract:
    """The contract in `path`, whichever source it is (module docstring); `overrides` go to that
    source's parser (`step_dt`, `term_scales`, ... for mjlab; `sdk_joints` for a deploy.yaml; `base`,
    `clip_obs` for rl_sar; `joints`, `group` for an env.yaml) and are refused where it takes none."""
    f = _File(path)
    if Path(path).suffix.lower() == '.onnx':
        return contract_from_onnx(path, **overrides)
    data = load_yaml(path)
    source = _yaml_source(data)
    if source == 'distill_ros':
        if overrides:
            raise f.error(f'is a distill_ros contract, which takes no overrides; got {sorted(overrides)}')
        return PolicyContract.from_json(data, f.name)
    parsers = {'deploy_yaml': (contract_from_deploy_yaml, 'a unitree_rl_lab deploy.yaml'),
               'rl_sar': (contract_from_rl_sar, 'an rl_sar config.yaml'),
               'isaaclab_env': (contract_from_isaaclab_env, 'an Isaac Lab env.yaml')}
    if source is None:
        detect_source(path)   # raises, naming what was expected
    fn, kind = parsers[source]
    _check_overrides(fn, overrides, f, kind)
    return fn(path, _data=data, **overrides)


def write_contract_yaml(contract: PolicyContract, path: str | Path) -> Path:
    """The contract as a distill_ros contract YAML (`load_contract` reads it back)."""
    path = Path(path)
    header = f'# distill_ros policy contract{f" (from {contract.source})" if contract.source else ""}\n'
    path.write_text(header + yaml.safe_dump(contract.to_json(), sort_keys=False, default_flow_style=None, width=120))
    return path


def attach_onnx_metadata(onnx_path: str | Path, contract: PolicyContract) -> None:
    """Write the contract into an ONNX model's metadata: its JSON under `distill_ros_contract` (what
    `load_contract` reads first), and mjlab's keys (`joint_names`, `joint_stiffness`, `joint_damping`,
    `default_joint_pos`, `action_scale`, `observation_names` in our term names, and `step_dt`) so
    tools that read mjlab metadata read the same values. Keys already there are replaced; the model's
    weights (external data included) are left as they are."""
    import onnx

    model = _load_onnx(onnx_path)

    def csv(values: Sequence[Any]) -> str:
        return ','.join(repr(float(v)) if not isinstance(v, str) else v for v in values)

    entries = {ONNX_CONTRACT_KEY: json.dumps(contract.to_json(), separators=(',', ':')),
               'joint_names': csv(contract.joints), 'default_joint_pos': csv(contract.default_joint_pos),
               'action_scale': csv(contract.action_scale),
               'observation_names': csv([t.name for t in contract.observation.terms])}
    if contract.stiffness is not None:
        entries['joint_stiffness'] = csv(contract.stiffness)
    if contract.damping is not None:
        entries['joint_damping'] = csv(contract.damping)
    if contract.step_dt is not None:
        entries['step_dt'] = repr(float(contract.step_dt))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    for key, value in kept + list(entries.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(onnx_path))
