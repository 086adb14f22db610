"""The project's one checkpoint format, for teachers and students alike.

A checkpoint is a folder:

    model.safetensors   every tensor of the policy (weights, log std, normalization statistics)
    policy.json         architecture, observation layout (source and named fields), action names
                        and limits, task, provenance (seed, git revision, command) and metrics

Loading reads JSON and safetensors only: nothing is ever unpickled. A checkpoint is checked
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
from safetensors.torch import load_file, save_file
from torch import nn

from distill_ros.observation import HistoryBuffer, ObsSpec
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

    def check_task(self, obs_spec: ObsSpec, action_names: list[str], where: str = '') -> None:
        """Refuse to run on a task whose observation layout or actions differ from training."""
        label = f'checkpoint {self.path or ""} ({self.obs_source} observation){where}'
        try:
            self.obs_spec.check_matches(obs_spec, label)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        if list(action_names) != list(self.action_names):
            raise CheckpointError(f'{label}: actions {self.action_names} do not match the task\'s {list(action_names)}')


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
        'architecture': ckpt.model.config(),
        'observation': {'source': ckpt.obs_source, 'fields': ckpt.obs_spec.to_json(),
                        **({'history': ckpt.history, 'past_actions': ckpt.past_actions}
                           if ckpt.history is not None else {})},
        'action': {'names': list(ckpt.action_names), 'low': np.asarray(ckpt.action_low).tolist(),
                   'high': np.asarray(ckpt.action_high).tolist()},
        'provenance': ckpt.provenance,
        'metrics': ckpt.metrics,
    }
    tmp_weights, tmp_spec = folder / (WEIGHTS + '.tmp'), folder / (SPEC + '.tmp')
    save_file(tensors, str(tmp_weights))
    tmp_spec.write_text(json.dumps(spec, indent=2) + '\n')
    os.replace(tmp_weights, folder / WEIGHTS)
    os.replace(tmp_spec, folder / SPEC)
    ckpt.path = folder
    return folder


def load(folder: str | Path) -> Checkpoint:
    folder = Path(folder)
    spec_path, weights_path = folder / SPEC, folder / WEIGHTS
    for path in (spec_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f'{folder} is not a distill_ros checkpoint: {path.name} is missing '
                                  f'(expected {WEIGHTS} and {SPEC})')
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f'{spec_path}: not valid JSON: {exc}') from exc
    if spec.get('format') != FORMAT:
        raise CheckpointError(f'{spec_path}: format is {spec.get("format")!r}, expected {FORMAT!r}')
    try:
        obs = spec['observation']
        action = spec['action']
        model = build_model(spec['architecture'])
        obs_spec = ObsSpec.from_json(obs['fields'])
        source = obs['source']
        past_actions = bool(obs.get('past_actions', False))
    except ValueError as exc:
        raise CheckpointError(f'{spec_path}: {exc}') from exc
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f'{spec_path}: malformed spec ({exc!r}); expected keys architecture, '
                              f'observation.source, observation.fields, action.names/low/high') from exc
    if source not in OBS_SOURCES:
        raise CheckpointError(f'{spec_path}: observation.source is {source!r}; expected one of {OBS_SOURCES}')
    if is_history_policy(model):
        step = obs_spec.size + (len(action['names']) if past_actions else 0)
        if step != model.step_dim:
            raise CheckpointError(f'{spec_path}: observation fields hold {obs_spec.size} values'
                                  f'{" plus the previous action" if past_actions else ""} per step but the '
                                  f'model expects {model.step_dim}')
    elif obs_spec.size != model.obs_dim:
        raise CheckpointError(f'{spec_path}: observation fields hold {obs_spec.size} values but the model '
                              f'expects {model.obs_dim}')
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f'{weights_path}: cannot read safetensors file: {exc}') from exc
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f'{weights_path}: tensors do not fit the architecture in {SPEC}: {exc}') from exc
    model.eval()
    return Checkpoint(model=model, obs_source=source, obs_spec=obs_spec, action_names=list(action['names']),
                      action_low=np.asarray(action['low'], dtype=np.float64),
                      action_high=np.asarray(action['high'], dtype=np.float64), task=spec.get('task', ''),
                      role=spec.get('role', 'teacher'), provenance=spec.get('provenance', {}),
                      metrics=spec.get('metrics', {}), path=folder, past_actions=past_actions)
