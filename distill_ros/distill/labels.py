"""The teacher's side of distillation: what the student is trained to match, at every sample.

The teacher is a Gaussian policy π*(a | s) = N(μ*(s), σ*²). `teacher_distribution` is the one place
the distillation side runs a teacher on a batch of its inputs (offline labelling here, fine-tuning's
regularizer targets); DAgger collection runs it tick by tick through `Actor`, as any checkpoint, and
takes σ* from `policy_std`.

Labels come from the teacher checkpoint run over the dataset (`teacher_labels`): a privileged
teacher reads `privileged_obs`; a history student used as the teacher of a progressive stage reads
its own sensor-history windows (a recurrent one whole episodes from a zero state). Datasets without
privileged observations (bags from a robot) fall back to the recorded teacher action distribution
(`recorded_labels`); feature matching then cannot run. `distillation_labels` gathers what the
configured losses need into `Labels`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from distill_ros.data.dataset import Dataset, DatasetError
from distill_ros.data.sampler import HistorySampler
from distill_ros.distill.config import LossConfig
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.students import HistoryPolicy, is_recurrent


@dataclass
class Labels:
    """The targets of every sample (row i is sample i), in the terms of docs/methods.md.

    mean     μ*(s), the teacher's action mean (logit matching)
    std      σ*, its standard deviation
    action   BC's target: clip(μ*(s), a_lo, a_hi) with `losses.bc.clip_labels`, else μ*(s)
    feature  f*(s), the teacher feature that feature matching regresses (None without it)
    state    the privileged state standardized on the training rows, the estimator head's target"""

    mean: torch.Tensor
    std: torch.Tensor
    action: torch.Tensor
    feature: torch.Tensor | None = None
    state: torch.Tensor | None = None

    def at(self, index: torch.Tensor) -> Labels:
        """The labels of the samples `index`."""
        return Labels(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                         for f in fields(self)})


def policy_std(model: nn.Module) -> torch.Tensor:
    """σ of a Gaussian policy (state-independent: exp of its learned log std)."""
    return model.log_std.detach().exp()


@torch.no_grad()
def teacher_distribution(model: nn.Module, inputs: torch.Tensor, feature: str | None = None, name: str = 'teacher'
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(μ*, σ*, f*): the Gaussian of a teacher (any flat or window policy) on a batch of its inputs,
    and its named `feature` when asked (`name` says whose in the error for a feature it lacks)."""
    mean, features = model.forward_features(inputs)
    value = None
    if feature:
        if feature not in features:
            raise ValueError(f'{name} has no feature {feature!r}; it has {sorted(features)}')
        value = features[feature]
    return mean, model.log_std.exp().expand_as(mean), value


@torch.no_grad()
def teacher_labels(teacher: Checkpoint, data: Dataset, feature: str | None = None,
                   chunk: int = 8192) -> dict[str, torch.Tensor]:
    """The teacher's action mean and std (and `feature`) for every sample of `data`:
    {'mean', 'std'[, 'feature']}."""
    model = teacher.model.eval()
    where = f'teacher {teacher.path} vs dataset {data.folder}'
    if teacher.obs_source == 'privileged':
        if not data.spec.privileged.size or 'privileged_obs' not in data.arrays:
            raise DatasetError(f'{data.folder} has no privileged observations for the privileged teacher')
        teacher.obs_spec.check_matches(data.spec.privileged, where)
        flat = torch.from_numpy(np.ascontiguousarray(data.arrays['privileged_obs'], dtype=np.float32))
        batches = (flat[start:start + chunk] for start in range(0, len(data), chunk))
    else:
        teacher.obs_spec.check_matches(data.spec.sensor, where)
        sampler = HistorySampler(data, teacher.history, teacher.past_actions)
        if is_recurrent(model):   # a recurrent stage teacher: run over whole episodes from a zero state
            return recurrent_outputs(model, sampler, feature)
        batches = (batch.inputs for batch in sampler.window_batches(torch.arange(len(data)), chunk))
    means, stds, feats = [], [], []
    for inputs in batches:
        mean, std, value = teacher_distribution(model, inputs, feature, f'teacher {teacher.path}')
        means.append(mean)
        stds.append(std)
        feats.append(value)
    out = {'mean': torch.cat(means), 'std': torch.cat(stds)}
    if feature:
        out['feature'] = torch.cat(feats)
    return out


@torch.no_grad()
def recurrent_outputs(model: HistoryPolicy, sampler: HistorySampler, feature: str | None = None,
                      chunk: int = 16) -> dict[str, torch.Tensor]:
    """Action mean and std (and `feature`) of a recurrent policy at every sample of `sampler`, each
    episode run from its start with a zero state, as deployed."""
    n = sampler.n
    out = {'mean': torch.empty(n, model.action_dim)}
    for batch in sampler.episode_batches(range(len(sampler.episode_starts)), chunk):
        mean, features, _ = model.forward_sequence(batch.inputs)
        out['mean'][batch.index] = mean[batch.mask]
        if feature:
            if feature not in features:
                raise ValueError(f'teacher has no feature {feature!r}; it has {sorted(features)}')
            value = features[feature][batch.mask]
            out.setdefault('feature', torch.empty(n, value.shape[-1]))[batch.index] = value
    out['std'] = model.log_std.exp().expand(n, -1).clone()
    return out


def recorded_labels(data: Dataset) -> dict[str, torch.Tensor]:
    """The teacher distribution recorded with the data (teacher/distribution), for data without
    privileged observations to run the teacher on."""
    if 'teacher_mean' not in data.arrays:
        raise DatasetError(f'{data.folder} holds no teacher actions and no privileged observations to label')
    return {'mean': torch.from_numpy(data.arrays['teacher_mean'].astype(np.float32)),
            'std': torch.from_numpy(np.maximum(data.arrays['teacher_std'], 1e-3).astype(np.float32))}


def distillation_labels(teacher: Checkpoint, data: Dataset, losses: LossConfig, feature: str | None,
                        train_rows: np.ndarray) -> Labels:
    """Everything the weighted losses need for every sample of `data`: the teacher's labels (or the
    recorded ones), BC's clipped target, teacher feature `feature` (None: no feature matching) and
    the estimator's standardized privileged state (statistics of `train_rows`)."""
    has_privileged = 'privileged_obs' in data.arrays and bool(data.spec.privileged.size)
    if teacher.obs_source == 'sensor' or (teacher.obs_source == 'privileged' and has_privileged):
        outputs = teacher_labels(teacher, data, feature)
    else:
        if feature:
            raise ValueError('feature matching needs privileged observations to run the teacher on; '
                             f'{data.folder} has none (set losses.feature.weight: 0)')
        outputs = recorded_labels(data)
    action = outputs['mean']
    if losses.bc.clip_labels:
        # The teacher's mean beyond the action limits executes as the limit: an error there costs
        # nothing, so BC regresses the clipped mean (KL keeps the unclipped distribution).
        low, high = (torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in (teacher.action_low,
                                                                                   teacher.action_high))
        action = torch.maximum(torch.minimum(outputs['mean'], high), low)
    state = None
    if losses.estimator.weight > 0:
        # An estimator head: the latent must also carry the privileged state (standardized per
        # element on the training rows), as the concurrent state estimators of legged robots do.
        if not has_privileged:
            raise ValueError(f'losses.estimator needs privileged observations; {data.folder} has none '
                             '(set losses.estimator.weight: 0)')
        privileged = torch.from_numpy(np.ascontiguousarray(data.arrays['privileged_obs'], dtype=np.float32))
        rows = privileged[torch.from_numpy(train_rows)]
        state = (privileged - rows.mean(0)) / (rows.std(0) + 1e-6)
    return Labels(outputs['mean'], outputs['std'], action, outputs.get('feature'), state)
