"""Offline distillation of a student from a dataset: the losses composed by weight, early stopping on
a validation split, checkpoints, resume, TensorBoard, progress, and DistributedDataParallel.

Labels come from the teacher checkpoint run over the dataset (`teacher_labels`): a privileged
teacher reads `privileged_obs`; a history student used as the teacher of a progressive stage
reads its own sensor-history windows. Datasets without privileged observations (bags from a
robot) fall back to the recorded teacher action distribution; feature matching then cannot run.

Under `torchrun` (WORLD_SIZE > 1) every rank draws the same global batch indices from the same
seeded generator and takes its slice; DistributedDataParallel averages the gradients, so a
2-process run follows the 1-process run on the same data up to float rounding. Only rank 0 writes.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import distributed as dist
from torch import nn

from distill_ros.data.dataset import Dataset, DatasetError
from distill_ros.data.sampler import episode_end_of, episode_rows, episode_start_of, sequence_rows, window_rows
from distill_ros.distill.config import RECURRENT_TYPES, DistillConfig, StudentConfig
from distill_ros.distill.losses import bc_loss, feature_loss, logit_loss
from distill_ros.observation import history_steps
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.students import HistoryPolicy, is_recurrent, make_student

CURVE = 'learning_curve.jsonl'


def concat_datasets(datasets: list[Dataset]) -> Dataset:
    """One in-memory dataset from several of the same layout (DAgger aggregation)."""
    first = datasets[0]
    for d in datasets[1:]:
        if d.spec != first.spec:
            raise DatasetError(f'{d.folder} has another layout than {first.folder}; cannot aggregate')
    starts, offset = [], 0
    for d in datasets:
        starts.append(d.episode_starts + offset)
        offset += len(d)
    arrays = {k: np.concatenate([d.arrays[k] for d in datasets]) for k in first.arrays}
    return Dataset(first.folder, first.spec, arrays, np.concatenate(starts).astype(np.int64),
                   [e for d in datasets for e in d.episodes], [p for d in datasets for p in d.problems])


def window_index(episode_starts: np.ndarray, n: int, history: int) -> torch.Tensor:
    """(n, history) row indices of each sample's history window, oldest first, the episode's first
    row repeated before its start (as `HistoryBuffer` does at run time)."""
    return window_rows(torch.arange(n), episode_start_of(episode_starts, n), history)


def policy_inputs(ckpt_or_history: Checkpoint | tuple[int, bool], data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(step rows, window index) for a history policy over `data`."""
    if isinstance(ckpt_or_history, Checkpoint):
        history, past_actions = ckpt_or_history.history, ckpt_or_history.past_actions
    else:
        history, past_actions = ckpt_or_history
    steps = history_steps(data.arrays['sensor_obs'], data.arrays['action'] if past_actions else None,
                          data.episode_starts)
    return torch.from_numpy(np.ascontiguousarray(steps)), window_index(data.episode_starts, len(data), history)


@torch.no_grad()
def teacher_labels(teacher: Checkpoint, data: Dataset, feature: str | None = None,
                   chunk: int = 8192) -> dict[str, torch.Tensor]:
    """The teacher's action mean and std (and `feature`) for every sample of `data`."""
    n = len(data)
    model = teacher.model.eval()
    if teacher.obs_source == 'privileged':
        if not data.spec.privileged.size or 'privileged_obs' not in data.arrays:
            raise DatasetError(f'{data.folder} has no privileged observations for the privileged teacher')
        teacher.obs_spec.check_matches(data.spec.privileged, f'teacher {teacher.path} vs dataset {data.folder}')
        flat = torch.from_numpy(np.ascontiguousarray(data.arrays['privileged_obs'], dtype=np.float32))

        def inputs(sl):
            return flat[sl]
    else:
        teacher.obs_spec.check_matches(data.spec.sensor, f'teacher {teacher.path} vs dataset {data.folder}')
        steps, index = policy_inputs(teacher, data)
        if is_recurrent(model):   # a recurrent stage teacher: run over whole episodes from a zero state
            return recurrent_outputs(model, steps, data.episode_starts, feature)

        def inputs(sl):
            return steps[index[sl]]
    means, stds, feats = [], [], []
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        mean, features = model.forward_features(inputs(sl))
        means.append(mean)
        stds.append(model.log_std.exp().expand_as(mean))
        if feature:
            if feature not in features:
                raise ValueError(f'teacher {teacher.path} has no feature {feature!r}; it has {sorted(features)}')
            feats.append(features[feature])
    out = {'mean': torch.cat(means), 'std': torch.cat(stds)}
    if feature:
        out['feature'] = torch.cat(feats)
    return out


@torch.no_grad()
def recurrent_outputs(model: HistoryPolicy, steps: torch.Tensor, episode_starts: np.ndarray,
                      feature: str | None = None, chunk: int = 16) -> dict[str, torch.Tensor]:
    """Action mean and std (and `feature`) of a recurrent policy at every row of `steps`, each
    episode run from its start with a zero state, as deployed."""
    n = len(steps)
    out = {'mean': torch.empty(n, model.action_dim)}
    for e0 in range(0, len(episode_starts), chunk):
        rows, mask = episode_rows(episode_starts, n, range(e0, min(len(episode_starts), e0 + chunk)))
        mean, features, _ = model.forward_sequence(steps[rows])
        out['mean'][rows[mask]] = mean[mask]
        if feature:
            if feature not in features:
                raise ValueError(f'teacher has no feature {feature!r}; it has {sorted(features)}')
            value = features[feature][mask]
            out.setdefault('feature', torch.empty(n, value.shape[-1]))[rows[mask]] = value
    out['std'] = model.log_std.exp().expand(n, -1).clone()
    return out


def recorded_labels(data: Dataset) -> dict[str, torch.Tensor]:
    if 'teacher_mean' not in data.arrays:
        raise DatasetError(f'{data.folder} holds no teacher actions and no privileged observations to label')
    return {'mean': torch.from_numpy(data.arrays['teacher_mean'].astype(np.float32)),
            'std': torch.from_numpy(np.maximum(data.arrays['teacher_std'], 1e-3).astype(np.float32))}


class Objective(nn.Module):
    """The student plus the feature projection and the state estimator head (both dropped after
    training); one module so DDP syncs them all."""

    def __init__(self, student: HistoryPolicy, feature_dim: int | None, state_dim: int | None = None):
        super().__init__()
        self.student = student
        self.projection = nn.Linear(student.latent_dim, feature_dim) if feature_dim else None
        self.estimator = nn.Linear(student.latent_dim, state_dim) if state_dim else None

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None):
        """Windows (batch, history, step_dim); or, for a recurrent student, step sequences
        (batch, T, step_dim) from a zero state with the `mask` of the steps that count."""
        if mask is None:
            mean, features = self.student.forward_features(inputs)
        else:
            mean, features, _ = self.student.forward_sequence(inputs)
            mean, features = mean[mask], {'latent': features['latent'][mask]}
        std = self.student.log_std.exp().expand_as(mean)
        projected = self.projection(features['latent']) if self.projection is not None else None
        state = self.estimator(features['latent']) if self.estimator is not None else None
        return mean, std, projected, state


def compute_losses(objective: nn.Module, inputs, labels: dict[str, torch.Tensor], cfg: DistillConfig,
                   mask: torch.Tensor | None = None):
    mean, std, projected, state = objective(inputs, mask)
    losses, total = {}, 0.0
    lc = cfg.losses
    if lc.bc.weight > 0:
        losses['bc'] = bc_loss(mean, labels.get('action', labels['mean']), lc.bc.kind)
        total = total + lc.bc.weight * losses['bc']
    if lc.kl.weight > 0:
        losses['kl'] = logit_loss(mean, std, labels['mean'], labels['std'], lc.kl.direction)
        total = total + lc.kl.weight * losses['kl']
    if lc.feature.weight > 0:
        losses['feature'] = feature_loss(projected, labels['feature'])
        total = total + lc.feature.weight * losses['feature']
    if lc.estimator.weight > 0:
        losses['estimator'] = feature_loss(state, labels['state'])
        total = total + lc.estimator.weight * losses['estimator']
    return total, losses


def split_episodes(data: Dataset, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices of (train, validation), split by whole episodes."""
    n_ep = len(data.episode_starts)
    order = np.random.default_rng(seed).permutation(n_ep)
    n_val = min(n_ep - 1, max(1, round(fraction * n_ep))) if fraction > 0 and n_ep >= 2 else 0
    ends = np.append(data.episode_starts[1:], len(data))
    def rows(eps):
        return np.concatenate([np.arange(data.episode_starts[e], ends[e]) for e in sorted(eps)]).astype(np.int64) \
            if len(eps) else np.zeros(0, dtype=np.int64)
    return rows(order[n_val:]), rows(order[:n_val])


def world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {f'{i}.{k}': (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
               for i, state in sd['state'].items() for k, v in state.items()}
    return tensors, {'param_groups': sd['param_groups']}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        i, name = key.split('.', 1)
        state.setdefault(int(i), {})[name] = value
    opt.load_state_dict({'state': state, 'param_groups': meta['param_groups']})


def student_checkpoint(student: HistoryPolicy, scfg: StudentConfig, data: Dataset, teacher: Checkpoint,
                       cfg: DistillConfig, run: str, metrics: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        model=student.eval(), obs_source='sensor', obs_spec=data.spec.sensor, action_names=list(data.spec.action_names),
        action_low=teacher.action_low, action_high=teacher.action_high, task=data.spec.task, role='student',
        past_actions=scfg.past_actions,
        provenance=ckpt_io.provenance(task=data.spec.task, run=run, seed=cfg.train.seed,
                                      teacher=str(teacher.path or ''), dataset=str(data.folder),
                                      samples=len(data), episodes=len(data.episode_starts), config=cfg.to_dict()),
        metrics=metrics)


def train_student(data: Dataset, teacher: Checkpoint, cfg: DistillConfig, out: str | Path, run: str = 'offline',
                  student_cfg: StudentConfig | None = None, init: Checkpoint | None = None, steps: int | None = None,
                  resume: bool = False, progress: bool = True, on_eval=None,
                  teacher_feature: str | None = None) -> Checkpoint:
    """Distil `teacher` into a new student (or continue `init`) on `data`; returns the best student
    on validation, also written to `out/runs/<run>/best` (and `last` + trainer state for resume).

    `on_eval(step, record)` is called after each evaluation (the distill node publishes it).
    `teacher_feature` overrides `losses.feature.teacher_feature` (a student teacher has `latent`)."""
    scfg = student_cfg or cfg.student
    tc = cfg.train
    steps = steps or tc.steps
    rank, world_size = world()
    torch.set_num_threads(tc.torch_threads)
    torch.manual_seed(tc.seed)
    if tc.batch_size % world_size:
        raise ValueError(f'train.batch_size {tc.batch_size} must divide evenly over {world_size} processes')
    out = Path(out)
    run_dir = out / 'runs' / run
    feature_name = (teacher_feature or cfg.losses.feature.teacher_feature) if cfg.losses.feature.weight > 0 else None
    if teacher.obs_source == 'privileged' and 'privileged_obs' in data.arrays and data.spec.privileged.size:
        labels = teacher_labels(teacher, data, feature_name)
    elif teacher.obs_source == 'sensor':
        labels = teacher_labels(teacher, data, feature_name)
    else:
        if feature_name:
            raise ValueError('feature matching needs privileged observations to run the teacher on; '
                             f'{data.folder} has none (set losses.feature.weight: 0)')
        labels = recorded_labels(data)
    if cfg.losses.bc.clip_labels:
        # The teacher's mean beyond the action limits executes as the limit: an error there costs
        # nothing, so BC regresses the clipped mean (KL keeps the unclipped distribution).
        low, high = (torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in (teacher.action_low,
                                                                                   teacher.action_high))
        labels['action'] = torch.maximum(torch.minimum(labels['mean'], high), low)
    action_dim = len(data.spec.action_names)
    recurrent = scfg.type in RECURRENT_TYPES if init is None else is_recurrent(init.model)
    step_rows, index = policy_inputs((1 if recurrent else scfg.history, scfg.past_actions), data)
    train_idx, val_idx = split_episodes(data, tc.val_fraction, tc.seed)
    if len(train_idx) == 0:
        raise ValueError(f'{data.folder}: no training samples')
    if init is not None:
        # A copy: the caller's checkpoint (e.g. the offline student a report compares against)
        # must keep its weights.
        student = copy.deepcopy(init.model)
        if not isinstance(student, HistoryPolicy):
            raise ValueError(f'{init.path} is not a history student; cannot continue training it')
    else:
        student = make_student(scfg.type, step_rows.shape[1], action_dim, scfg.history,
                               activation=scfg.activation, log_std_init=scfg.log_std_init, **scfg.sizes)
        rows = step_rows[torch.from_numpy(train_idx)]
        with torch.no_grad():
            student.obs_mean.copy_(rows.mean(0))
            student.obs_var.copy_(rows.var(0, unbiased=False).clamp_min(1e-6))
    if cfg.losses.estimator.weight > 0:
        # An estimator head: the latent must also carry the privileged state (standardized per
        # element on the training rows), as the concurrent state estimators of legged robots do.
        if 'privileged_obs' not in data.arrays or not data.spec.privileged.size:
            raise ValueError(f'losses.estimator needs privileged observations; {data.folder} has none '
                             '(set losses.estimator.weight: 0)')
        state = torch.from_numpy(np.ascontiguousarray(data.arrays['privileged_obs'], dtype=np.float32))
        rows = state[torch.from_numpy(train_idx)]
        labels['state'] = (state - rows.mean(0)) / (rows.std(0) + 1e-6)
    objective = Objective(student, labels['feature'].shape[1] if feature_name else None,
                          labels['state'].shape[1] if 'state' in labels else None)
    model = objective
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(objective)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    generator = torch.Generator().manual_seed(tc.seed + 7919)
    state = {'step': 0, 'best_val': math.inf, 'bad_evals': 0, 'stopped': False, 'wall_s': 0.0}
    best_state = None
    if resume and (run_dir / 'trainer_state.json').is_file():
        state = json.loads((run_dir / 'trainer_state.json').read_text())
        last = ckpt_io.load(run_dir / 'last')
        objective.student.load_state_dict(last.model.state_dict())
        tensors = load_file(str(run_dir / 'trainer_state.safetensors'))
        for name in ('projection', 'estimator'):
            head = getattr(objective, name)
            if head is not None:
                head.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + '.')})
        _load_optimizer(optimizer, {k[len('opt.'):]: v for k, v in tensors.items() if k.startswith('opt.')},
                        state['optimizer'])
        generator.set_state(tensors['generator'])
        if (run_dir / 'best').is_dir():
            best_state = ckpt_io.load(run_dir / 'best').model.state_dict()
    train_t = torch.from_numpy(train_idx)
    val_t = torch.from_numpy(val_idx if len(val_idx) else train_idx[:min(len(train_idx), 4096)])
    if recurrent:
        # Truncated BPTT: batch_size counts loss steps, so a batch holds batch_size / sequence_length
        # sequences; validation runs whole episodes from a zero state, as deployed.
        n_pick = max(world_size, tc.batch_size // tc.sequence_length)
        n_pick -= n_pick % world_size
        start_of, end_of = episode_start_of(data.episode_starts, len(data)), episode_end_of(data.episode_starts,
                                                                                            len(data))
        val_episodes = np.nonzero(np.isin(data.episode_starts, val_t.numpy()))[0]
        if len(val_episodes) == 0:
            val_episodes = np.nonzero(np.isin(data.episode_starts, train_idx))[0][:8]
    else:
        n_pick = tc.batch_size
    share = n_pick // world_size

    def batch(pick: torch.Tensor):
        """(inputs, labels, mask) of the samples `pick`: windows, or sequences whose loss starts there."""
        if not recurrent:
            return step_rows[index[pick]], labels_at(pick), None
        rows, mask = sequence_rows(pick, start_of[pick], end_of[pick], tc.burn_in, tc.sequence_length)
        return step_rows[rows], labels_at(rows[mask]), mask

    def validation_batches():
        if not recurrent:
            for s in range(0, len(val_t), 8192):
                idx = val_t[s:s + 8192]
                yield step_rows[index[idx]], labels_at(idx), None, len(idx)
            return
        for e0 in range(0, len(val_episodes), 16):
            rows, mask = episode_rows(data.episode_starts, len(data), val_episodes[e0:e0 + 16])
            yield step_rows[rows], labels_at(rows[mask]), mask, int(mask.sum())
    writer = None
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(out / 'tensorboard' / run))
        except ImportError:
            writer = None

    def labels_at(idx):
        return {k: v[idx] for k, v in labels.items()}

    @torch.no_grad()
    def validate() -> tuple[float, dict[str, float]]:
        objective.eval()
        totals, parts, count = 0.0, {}, 0
        for inputs, targets, mask, size in validation_batches():
            total, losses = compute_losses(objective, inputs, targets, cfg, mask)
            totals += float(total) * size
            for k, v in losses.items():
                parts[k] = parts.get(k, 0.0) + float(v) * size
            count += size
        objective.train()
        return totals / count, {k: v / count for k, v in parts.items()}

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm
        bar = tqdm(total=steps, initial=state['step'], desc=f'distilling {run}', unit='step', leave=False,
                   disable=None)
    started = time.monotonic() - state['wall_s']
    running = 0.0
    objective.train()
    while state['step'] < steps and not state['stopped']:
        if tc.lr_schedule == 'cosine':   # a function of the step alone, so a resumed run continues it
            ratio = tc.lr_final_ratio + (1 - tc.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * state['step'] / steps))
            for group in optimizer.param_groups:
                group['lr'] = tc.lr * ratio
        pick = train_t[torch.randint(len(train_t), (n_pick,), generator=generator)]
        inputs, targets, mask = batch(pick[rank * share:(rank + 1) * share])
        total, _ = compute_losses(model, inputs, targets, cfg, mask)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if tc.grad_clip > 0:
            nn.utils.clip_grad_norm_(objective.parameters(), tc.grad_clip)
        optimizer.step()
        state['step'] += 1
        loss_value = float(total.detach())
        running = 0.98 * running + 0.02 * loss_value if state['step'] > 1 else loss_value
        if bar is not None:
            bar.update(1)
        if state['step'] % tc.eval_every == 0 or state['step'] == steps:
            val, parts = validate()
            improved = val < state['best_val'] - 1e-12
            if improved:
                state['best_val'], state['bad_evals'] = val, 0
                best_state = {k: v.detach().clone() for k, v in objective.student.state_dict().items()}
            else:
                state['bad_evals'] += 1
                if state['bad_evals'] >= tc.patience:
                    state['stopped'] = True   # early stopping: no improvement for `patience` evaluations
            state['wall_s'] = time.monotonic() - started
            record = {'run': run, 'step': state['step'], 'train_loss': running, 'val_loss': val, 'losses': parts,
                      'wall_s': round(state['wall_s'], 2)}
            if bar is not None:
                bar.set_postfix(val=f'{val:.4g}', best=f'{state["best_val"]:.4g}')
            if rank == 0:
                with open(out / CURVE, 'a') as f:
                    f.write(json.dumps(record) + '\n')
                if writer is not None:
                    writer.add_scalar(f'{run}/val_loss', val, state['step'])
                    writer.add_scalar(f'{run}/train_loss', running, state['step'])
                    for k, v in parts.items():
                        writer.add_scalar(f'{run}/val_{k}', v, state['step'])
                metrics = {'val_loss': val, 'best_val_loss': state['best_val'], 'steps': state['step']}
                snapshot = student_checkpoint(objective.student, scfg, data, teacher, cfg, run, metrics)
                ckpt_io.save(snapshot, run_dir / 'last')
                if improved:
                    ckpt_io.save(snapshot, run_dir / 'best')
                objective.student.train()
                tensors, meta = _optimizer_tensors(optimizer)
                tensors = {f'opt.{k}': v for k, v in tensors.items()}
                for name in ('projection', 'estimator'):
                    head = getattr(objective, name)
                    if head is not None:
                        tensors.update({f'{name}.{k}': v.contiguous() for k, v in head.state_dict().items()})
                tensors['generator'] = generator.get_state()
                save_file(tensors, str(run_dir / 'trainer_state.safetensors.tmp'))
                os.replace(run_dir / 'trainer_state.safetensors.tmp', run_dir / 'trainer_state.safetensors')
                (run_dir / 'trainer_state.json.tmp').write_text(json.dumps({**state, 'optimizer': meta}))
                os.replace(run_dir / 'trainer_state.json.tmp', run_dir / 'trainer_state.json')
            if on_eval is not None:
                on_eval(state['step'], record)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if best_state is not None:
        objective.student.load_state_dict(best_state)
    metrics = {'best_val_loss': state['best_val'], 'steps': state['step'], 'wall_s': round(state['wall_s'], 2),
               'early_stopped': bool(state['stopped'])}
    result = student_checkpoint(objective.student, scfg, data, teacher, cfg, run, metrics)
    if rank == 0:
        final_state = {**state, 'optimizer': _optimizer_tensors(optimizer)[1]}
        (run_dir / 'trainer_state.json').write_text(json.dumps(final_state))
        ckpt_io.save(result, run_dir / 'best')
    result.path = run_dir / 'best'
    return result


def describe(cfg: StudentConfig) -> str:
    sizes = ','.join(f'{k}={v}' for k, v in cfg.sizes.items())
    return f'{cfg.type}(history={cfg.history}, {sizes}{", past actions" if cfg.past_actions else ""})'

