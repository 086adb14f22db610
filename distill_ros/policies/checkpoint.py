"""The project's one checkpoint format, for teachers and students alike.

A checkpoint is a folder:

    model.safetensors   every tensor of the policy (weights, log std, normalization statistics)
    policy.json         architecture, observation layout (source and named fields), action names
                        and limits, task, provenance (seed, git revision, command) and metrics
    model.onnx          only for an imported teacher that runs as an ONNX graph (`OnnxPolicy`);
                        policy.json records its sha256

Loading reads JSON, safetensors and ONNX protobuf only: nothing is ever unpickled. A checkpoint is checked
against the task it is used on, and a mismatch is refused with the first differing name.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from distill_ros.observation import HistoryBuffer, ObsSpec
from distill_ros.policies.onnx_policy import GRAPH, OnnxPolicy
from distill_ros.policies.students import build_model, is_history_policy

FORMAT = 'distill_ros.checkpoint/1'
WEIGHTS = 'model.safetensors'
SPEC = 'policy.json'
OBS_SOURCES = ('privileged', 'sensor')


class CheckpointError(ValueError):
    """A checkpoint folder is missing, damaged, or does not fit the task it is used with."""


@dataclass
class Checkpoint:
    model: nn.Module                     # GaussianMLP (flat input) or a HistoryPolicy (window input)
    obs_source: str                      # 'privileged' or 'sensor'
    obs_spec: ObsSpec
    action_names: list[str]
    action_low: np.ndarray
    action_high: np.ndarray
    task: str
    role: str = 'teacher'
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    past_actions: bool = False           # history students: each step also holds the previous action
    # The observation terms a teacher on a term task reads (contract.ObsGroup.to_json()); checked
    # against the task's `observation.teacher`, scales and history included.
    obs_terms: dict[str, Any] | None = None
    # What a controller needs of the task (sim.actuation.deployment_record): policy rate, action names,
    # default pose, action scale, PD gains. None in checkpoints written before it existed.
    deployment: dict[str, Any] | None = None
    # A task given as a file (sim.task.TaskFile.to_json(): path, sha256 of the YAML and its model);
    # None for a built-in task, which `task` names.
    task_file: dict[str, str] | None = None

    def load_task(self, given=None):
        """The task this checkpoint was made on: its task file (checked against the recorded hashes)
        or the built-in task it names; `given` (a --task path or name) stands in for a moved file."""
        from distill_ros.sim.task import TaskFile, resolve_task
        return resolve_task(self.task, TaskFile.from_json(self.task_file), f'checkpoint {self.path or ""}', given)

    @property
    def history(self) -> int | None:
        """Window length for history students; None for a policy on one flat observation."""
        return self.model.history if is_history_policy(self.model) else None

    def history_buffer(self) -> HistoryBuffer:
        """A fresh run-time history buffer shaped for this student (history 1 for flat policies)."""
        return HistoryBuffer(self.history or 1, self.obs_spec.size, len(self.action_names) if self.past_actions else 0)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action (the distribution's mean), clipped to the action limits. `obs` is a
        flat observation for flat policies, a (history, step_dim) window for history students
        (a leading batch dimension is kept when given)."""
        if getattr(self.model, 'recurrent', False):
            raise ValueError(f'{self.path or "this checkpoint"} is a recurrent student: it acts with its hidden state, '
                             'tick by tick from an episode\'s start; use distill_ros.policies.actor.Actor')
        x = torch.as_tensor(obs, dtype=torch.float32)
        single = self.history is not None and x.ndim == 2
        with torch.no_grad():
            mean = self.model(x[None] if single else x).numpy()
        return np.clip(mean[0] if single else mean, self.action_low, self.action_high)

    def check_env(self, env, where: str = '') -> None:
        """`check_task` against a DistillEnv, on the observation this checkpoint reads."""
        spec = env.privileged_spec if self.obs_source == 'privileged' else env.sensor_spec
        self.check_task(spec, env.action_names, where)
        if self.obs_source == 'privileged':
            self.check_terms(env.task.teacher_observation, where)

    def check_terms(self, group, where: str = '') -> None:
        """Refuse a teacher whose observation terms (scales, clips, history) differ from the task's."""
        from distill_ros.contract import ContractError, ObsGroup, group_difference

        label = f'checkpoint {self.path or ""} (teacher observation terms){where}'
        if (group is None) != (self.obs_terms is None):
            mine = 'observation terms' if self.obs_terms is not None else 'raw privileged fields'
            theirs = 'observation terms (observation.teacher)' if group is not None else 'raw privileged fields'
            raise CheckpointError(f'{label}: the checkpoint reads {mine}, the task gives {theirs}')
        if group is None:
            return
        try:
            mine = ObsGroup.from_json(self.obs_terms, f'{self.path}: observation.terms')
        except ContractError as exc:
            raise CheckpointError(str(exc)) from None
        difference = group_difference(mine, group)
        if difference:
            raise CheckpointError(f'{label}: {difference} (checkpoint: as trained; task: observation.teacher)')

    def check_task(self, obs_spec: ObsSpec, action_names: list[str], where: str = '') -> None:
        """Refuse to run on a task whose observation layout or actions differ from training."""
        label = f'checkpoint {self.path or ""} ({self.obs_source} observation){where}'
        try:
            self.obs_spec.check_matches(obs_spec, label)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        if list(action_names) != list(self.action_names):
            raise CheckpointError(f'{label}: actions {self.action_names} do not match the task\'s {list(action_names)}')


def teacher_terms(env) -> dict[str, Any] | None:
    """The observation terms a teacher of `env`'s task reads (None: the raw privileged fields)."""
    group = env.task.teacher_observation
    return None if group is None else group.to_json()


def task_file(env) -> dict[str, str] | None:
    """The task file record of `env`'s task (None for a built-in task)."""
    return env.task.file.to_json() if getattr(env.task, 'file', None) else None


@functools.lru_cache(maxsize=1)
def git_revision() -> str:
    """The package's git revision ('-dirty' with uncommitted changes), read once per process: a
    long training calls it at its start, so a commit made meanwhile is not credited with the run."""
    try:
        out = subprocess.run(['git', 'describe', '--always', '--dirty', '--abbrev=7'], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def provenance(**extra: Any) -> dict[str, Any]:
    return {'git_revision': git_revision(), 'created': _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
            'command': ' '.join(sys.argv), **extra}


def save(ckpt: Checkpoint, folder: str | Path) -> Path:
    """Write `ckpt` to `folder` atomically (a crash never leaves a half-written checkpoint)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in ckpt.model.state_dict().items()}
    spec = {
        'format': FORMAT,
        'role': ckpt.role,
        'task': ckpt.task,
        **({'task_file': ckpt.task_file} if ckpt.task_file else {}),
        'architecture': ckpt.model.config(),
        'observation': {'source': ckpt.obs_source, 'fields': ckpt.obs_spec.to_json(),
                        **({'terms': ckpt.obs_terms} if ckpt.obs_terms is not None else {}),
                        **({'history': ckpt.history, 'past_actions': ckpt.past_actions}
                           if ckpt.history is not None else {})},
        'action': {'names': list(ckpt.action_names), 'low': np.asarray(ckpt.action_low).tolist(),
                   'high': np.asarray(ckpt.action_high).tolist()},
        **({'deployment': ckpt.deployment} if ckpt.deployment is not None else {}),
        'provenance': ckpt.provenance,
        'metrics': ckpt.metrics,
    }
    if isinstance(ckpt.model, OnnxPolicy):   # the graph first: policy.json, written last, names its sha256
        (folder / (GRAPH + '.tmp')).write_bytes(ckpt.model.graph)
        os.replace(folder / (GRAPH + '.tmp'), folder / GRAPH)
    tmp_weights, tmp_spec = folder / (WEIGHTS + '.tmp'), folder / (SPEC + '.tmp')
    save_file(tensors, str(tmp_weights))
    tmp_spec.write_text(json.dumps(spec, indent=2) + '\n')
    os.replace(tmp_weights, folder / WEIGHTS)
    os.replace(tmp_spec, folder / SPEC)
    ckpt.path = folder
    return folder


def _check_tensor_shapes(weights_path: Path, shapes: nn.Module) -> None:
    """Compare the safetensors header (names and shapes, read without loading any tensor) with the
    tensors the architecture in the JSON implies (`shapes`, built on the meta device)."""
    try:
        with safe_open(str(weights_path), framework='pt') as f:
            found = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f'{weights_path}: cannot read safetensors file: {exc}') from exc
    expected = {key: tuple(t.shape) for key, t in shapes.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = [f'{key}: file {list(found[key])}, architecture {list(expected[key])}'
             for key in expected if key in found and found[key] != expected[key]]
    if missing or unexpected or wrong:
        problems = [f'missing tensors {missing[:5]}' if missing else '',
                    f'unexpected tensors {unexpected[:5]}' if unexpected else '',
                    f'shape mismatch {wrong[:3]}' if wrong else '']
        raise CheckpointError(f'{weights_path}: tensors do not fit the architecture in {SPEC} '
                              f'({"; ".join(p for p in problems if p)}); nothing was built')


def load(folder: str | Path) -> Checkpoint:
    """The checkpoint in `folder`, every part checked against the others before any weight is read
    (a clear `CheckpointError` naming the file and what was expected, never a pickle)."""
    folder = Path(folder)
    spec_path, weights_path = folder / SPEC, folder / WEIGHTS
    for path in (spec_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f'{folder} is not a distill_ros checkpoint: {path.name} is missing '
                                  f'(expected {WEIGHTS} and {SPEC})')
    spec = _read_spec(spec_path)
    shapes, obs_spec, source, past_actions, names, low, high = _parse_spec(spec_path, spec)
    _check_tensor_shapes(weights_path, shapes)
    model = _load_model(folder, spec['architecture'])
    return Checkpoint(model=model, obs_source=source, obs_spec=obs_spec, action_names=names,
                      action_low=np.asarray(low, dtype=np.float64),
                      action_high=np.asarray(high, dtype=np.float64), task=spec.get('task', ''),
                      role=spec.get('role', 'teacher'), provenance=spec.get('provenance', {}),
                      metrics=spec.get('metrics', {}), path=folder, past_actions=past_actions,
                      obs_terms=spec['observation'].get('terms'), deployment=_deployment(spec_path, spec),
                      task_file=_task_file(spec_path, spec))


def _task_file(spec_path: Path, spec: dict[str, Any]) -> dict[str, str] | None:
    record = spec.get('task_file')
    if record is None:
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ('path', 'sha256')):
        raise CheckpointError(f'{spec_path}: task_file must be a mapping with string path and sha256, got {record!r}')
    return {k: str(v) for k, v in record.items() if k in ('path', 'sha256', 'model_sha256')}


def _deployment(spec_path: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    record = spec.get('deployment')
    if record is None:
        return None
    rate = record.get('policy_rate_hz') if isinstance(record, dict) else None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1e5:
        raise CheckpointError(f'{spec_path}: deployment.policy_rate_hz must be a rate in Hz (> 0), got {rate!r}')
    return record


def _read_spec(spec_path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f'{spec_path}: not valid JSON: {exc}') from exc
    if not isinstance(spec, dict):
        raise CheckpointError(f'{spec_path}: holds a {type(spec).__name__}; expected a JSON object with "format": '
                              f'{FORMAT!r}')
    if spec.get('format') != FORMAT:
        raise CheckpointError(f'{spec_path}: format is {spec.get("format")!r}, expected {FORMAT!r}')
    return spec


def _parse_spec(spec_path: Path, spec: dict[str, Any]):
    """(model on the meta device, ObsSpec, source, past_actions, action names, low, high) of a spec
    whose observation and action sizes agree with its architecture."""
    try:
        obs = spec['observation']
        action = spec['action']
        # On the meta device: the architecture's shapes, with no memory allocated, so absurd sizes
        # in the JSON are refused by comparison with the file instead of by an allocation.
        with torch.device('meta'):
            shapes = build_model(spec['architecture'])
        obs_spec = ObsSpec.from_json(obs['fields'])
        source = obs['source']
        past_actions = bool(obs.get('past_actions', False))
        names, low, high = list(action['names']), action['low'], action['high']
    except ValueError as exc:
        raise CheckpointError(f'{spec_path}: {exc}') from exc
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f'{spec_path}: malformed spec ({type(exc).__name__}: {exc}); expected keys '
                              f'architecture (type and sizes of a known policy), observation.source, '
                              f'observation.fields, action.names/low/high') from exc
    if source not in OBS_SOURCES:
        raise CheckpointError(f'{spec_path}: observation.source is {source!r}; expected one of {OBS_SOURCES}')
    if is_history_policy(shapes):
        step = obs_spec.size + (len(names) if past_actions else 0)
        if step != shapes.step_dim:
            raise CheckpointError(f'{spec_path}: observation fields hold {obs_spec.size} values'
                                  f'{" plus the previous action" if past_actions else ""} per step but the '
                                  f'model expects {shapes.step_dim}')
    elif obs_spec.size != shapes.obs_dim:
        raise CheckpointError(f'{spec_path}: observation fields hold {obs_spec.size} values but the model '
                              f'expects {shapes.obs_dim}')
    if not (len(names) == shapes.action_dim == np.size(low) == np.size(high)):
        raise CheckpointError(f'{spec_path}: action has {len(names)} names, {np.size(low)} low and {np.size(high)} '
                              f'high limits; the model outputs {shapes.action_dim} actions')
    return shapes, obs_spec, source, past_actions, names, low, high


def _load_model(folder: Path, architecture: dict[str, Any]) -> nn.Module:
    """The model of `architecture` with the folder's weights (and graph, for an ONNX teacher)."""
    weights_path = folder / WEIGHTS
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f'{weights_path}: cannot read safetensors file: {exc}') from exc
    model = build_model(architecture)  # sizes now known to match the file
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f'{weights_path}: tensors do not fit the architecture in {SPEC}: {exc}') from exc
    if isinstance(model, OnnxPolicy):
        graph_path = folder / GRAPH
        if not graph_path.is_file():
            raise CheckpointError(f'{folder}: {GRAPH} is missing; {SPEC} describes an ONNX graph teacher')
        try:
            model.attach(graph_path.read_bytes(), str(graph_path))
        except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others for damaged files
            raise CheckpointError(f'{graph_path}: {exc}' if str(graph_path) not in str(exc) else str(exc)) from None
    return model.eval()
