"""Offline distillation of a student from a dataset: `train_student`, and `DistillationRunner`, the
loop around the `Distillation` algorithm (distillation.py), as rsl_rl's runners are around theirs:
batches drawn by the `HistorySampler`, evaluation on a validation split of whole episodes, early
stopping, checkpoints (`best`, `last`) and the trainer state for --resume, the learning curve,
TensorBoard and a progress bar (run_files.RunLog), and DistributedDataParallel.

The teacher's labels are computed once, before the loop (labels.py). Under `torchrun`
(WORLD_SIZE > 1) every rank draws the same global batch indices from the same seeded generator and
takes its slice; DistributedDataParallel averages the gradients, so a 2-process run follows the
1-process run on the same data up to float rounding. Only rank 0 writes.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import distributed as dist

from distill_ros.data.dataset import Dataset, DatasetError
from distill_ros.data.sampler import Batch, HistorySampler
from distill_ros.distill.config import RECURRENT_TYPES, DistillConfig, StudentConfig
from distill_ros.distill.distillation import Distillation
from distill_ros.distill.labels import distillation_labels
from distill_ros.distill.run_files import RunLog, has_trainer_state, load_trainer_state, save_trainer_state
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.policies.students import HistoryPolicy, is_recurrent, make_student

BATCH_SEED_OFFSET = 7919   # the batch generator's seed is train.seed + this (apart from the split's and the init's)


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
    """(rank, world size) under torchrun; (0, 1) otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def describe(cfg: StudentConfig) -> str:
    sizes = ','.join(f'{k}={v}' for k, v in cfg.sizes.items())
    return f'{cfg.type}(history={cfg.history}, {sizes}{", past actions" if cfg.past_actions else ""})'


def student_checkpoint(student: HistoryPolicy, student_cfg: StudentConfig, data: Dataset, teacher: Checkpoint,
                       cfg: DistillConfig, run: str, metrics: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        model=student.eval(), obs_source='sensor', obs_spec=data.spec.sensor, action_names=list(data.spec.action_names),
        action_low=teacher.action_low, action_high=teacher.action_high, task=data.spec.task, role='student',
        task_file=data.spec.task_file.to_json() if data.spec.task_file else None,
        past_actions=student_cfg.past_actions, deployment=task_deployment(data.spec),
        provenance=ckpt_io.provenance(task=data.spec.task, run=run, seed=cfg.train.seed,
                                      teacher=str(teacher.path or ''), dataset=str(data.folder),
                                      samples=len(data), episodes=len(data.episode_starts), config=cfg.to_dict()),
        metrics=metrics)


def task_deployment(spec) -> dict[str, Any] | None:
    """The deployment record of a dataset's task (`DatasetSpec`: its task file or built-in name;
    None when the task cannot be loaded here: the controller then needs the task to find its rate
    and pose)."""
    from distill_ros.sim.env import deployment
    from distill_ros.sim.task import TaskConfigError

    try:
        return deployment(spec.load_task())
    except (TaskConfigError, OSError):
        return None


def initial_student(student_cfg: StudentConfig, init: Checkpoint | None, sampler: HistorySampler,
                    action_dim: int) -> HistoryPolicy:
    """A copy of `init` to continue training, or a new student whose input normalization is the
    statistics of the sampler's training steps."""
    if init is not None:
        # A copy: the caller's checkpoint (e.g. the offline student a report compares against)
        # must keep its weights.
        student = copy.deepcopy(init.model)
        if not isinstance(student, HistoryPolicy):
            raise ValueError(f'{init.path} is not a history student; cannot continue training it')
        return student
    student = make_student(student_cfg.type, sampler.steps.shape[1], action_dim, student_cfg.history,
                           activation=student_cfg.activation, log_std_init=student_cfg.log_std_init,
                           **student_cfg.sizes)
    rows = sampler.steps[sampler.indices]
    with torch.no_grad():
        student.obs_mean.copy_(rows.mean(0))
        student.obs_var.copy_(rows.var(0, unbiased=False).clamp_min(1e-6))
    return student


@dataclass
class TrainerState:
    """Where a run stands; trainer_state.json holds these and the optimizer's param groups."""

    step: int = 0
    best_val: float = math.inf      # the best validation loss so far
    bad_evals: int = 0              # evaluations since it last improved
    stopped: bool = False           # early stopping: `train.patience` evaluations without improvement
    wall_s: float = 0.0


class DistillationRunner:
    """Distils `teacher` into a new student of `student_cfg` (default `cfg.student`), or continues
    `init`, on `data`; writes OUT/runs/`run`/{best,last,trainer_state.*} and appends to OUT's learning
    curve. `teacher_feature` overrides `losses.feature.teacher_feature` (a student teacher has `latent`).

    The constructor sets the job up in a fixed order (torch's seed, the teacher's labels, the
    student's initial weights), so that a job gives the same numbers wherever it runs."""

    def __init__(self, data: Dataset, teacher: Checkpoint, cfg: DistillConfig, out: str | Path, run: str = 'offline',
                 student_cfg: StudentConfig | None = None, init: Checkpoint | None = None,
                 teacher_feature: str | None = None):
        self.data, self.teacher, self.cfg, self.run = data, teacher, cfg, run
        self.student_cfg = student_cfg or cfg.student
        self.out = Path(out)
        self.run_dir = self.out / 'runs' / run
        self.rank, self.world_size = world()
        train = cfg.train
        torch.set_num_threads(train.torch_threads)
        torch.manual_seed(train.seed)
        if train.batch_size % self.world_size:
            raise ValueError(f'train.batch_size {train.batch_size} must divide evenly over {self.world_size} processes')
        feature = (teacher_feature or cfg.losses.feature.teacher_feature) if cfg.losses.feature.weight > 0 else None
        train_rows, val_rows = split_episodes(data, train.val_fraction, train.seed)
        if len(train_rows) == 0:
            raise ValueError(f'{data.folder}: no training samples')
        labels = distillation_labels(teacher, data, cfg.losses, feature, train_rows)
        self.recurrent = self.student_cfg.type in RECURRENT_TYPES if init is None else is_recurrent(init.model)
        self.sampler = HistorySampler(data, 1 if self.recurrent else self.student_cfg.history,
                                      self.student_cfg.past_actions, indices=train_rows,
                                      seed=train.seed + BATCH_SEED_OFFSET)
        student = initial_student(self.student_cfg, init, self.sampler, len(data.spec.action_names))
        self.algorithm = Distillation(student, labels, cfg.losses, train, distributed=self.world_size > 1)
        self._set_validation(train_rows, val_rows)
        if self.recurrent:
            # Truncated BPTT: batch_size counts loss steps, so a batch holds batch_size / sequence_length
            # sequences; validation runs whole episodes from a zero state, as deployed.
            self.picks = max(self.world_size, train.batch_size // train.sequence_length)
            self.picks -= self.picks % self.world_size
        else:
            self.picks = train.batch_size
        self.share = self.picks // self.world_size
        self.best: dict[str, torch.Tensor] | None = None   # the student's weights at the best evaluation

    @property
    def student(self) -> HistoryPolicy:
        return self.algorithm.student

    def _set_validation(self, train_rows: np.ndarray, val_rows: np.ndarray) -> None:
        """The validation samples (a few training ones when the split holds none), and for a
        recurrent student the whole episodes they start."""
        self.val_rows = torch.from_numpy(val_rows if len(val_rows) else train_rows[:min(len(train_rows), 4096)])
        self.val_episodes = None
        if self.recurrent:
            starts = self.data.episode_starts
            self.val_episodes = np.nonzero(np.isin(starts, self.val_rows.numpy()))[0]
            if len(self.val_episodes) == 0:
                self.val_episodes = np.nonzero(np.isin(starts, train_rows))[0][:8]

    def _batch(self) -> Batch:
        """This rank's slice of a global batch that every rank draws alike: windows, or sequences
        whose loss starts at the drawn samples."""
        pick = self.sampler.draw(self.picks)
        mine = pick[self.rank * self.share:(self.rank + 1) * self.share]
        if self.recurrent:
            return self.sampler.sequences(mine, self.cfg.train.burn_in, self.cfg.train.sequence_length)
        return self.sampler.windows(mine)

    def _validation(self) -> Iterator[Batch]:
        if self.recurrent:
            return self.sampler.episode_batches(self.val_episodes)
        return self.sampler.window_batches(self.val_rows)

    def learn(self, steps: int, resume: bool = False, progress: bool = True,
              on_eval: Callable[[int, dict], None] | None = None) -> Checkpoint:
        """Train to `steps` optimizer steps (from where a previous run stopped, with `resume`), or
        until early stopping; returns the best student on validation, also written to
        OUT/runs/<run>/best. `on_eval(step, record)` is called after each evaluation."""
        state = self._resume() if resume and has_trainer_state(self.run_dir) else TrainerState()
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        log = RunLog(self.out, self.run, steps, state.step, f'distilling {self.run}', 'step', progress,
                     active=self.rank == 0)
        started = time.monotonic() - state.wall_s
        running = 0.0   # the training loss, smoothed
        self.algorithm.heads.train()
        while state.step < steps and not state.stopped:
            self.algorithm.set_learning_rate(state.step, steps)
            loss = self.algorithm.update(self._batch())
            state.step += 1
            running = 0.98 * running + 0.02 * loss if state.step > 1 else loss
            log.advance()
            if state.step % self.cfg.train.eval_every == 0 or state.step == steps:
                record = self._evaluate(state, running, started, log)
                if on_eval is not None:
                    on_eval(state.step, record)
        log.close()
        return self._result(state)

    def _evaluate(self, state: TrainerState, running: float, started: float, log: RunLog) -> dict[str, Any]:
        """Validation loss and early stopping; on rank 0 the learning curve, the checkpoints and the
        trainer state. Returns the learning curve's record."""
        val, parts = self.algorithm.evaluate(self._validation())
        improved = val < state.best_val - 1e-12
        if improved:
            state.best_val, state.bad_evals = val, 0
            self.best = {k: v.detach().clone() for k, v in self.student.state_dict().items()}
        else:
            state.bad_evals += 1
            if state.bad_evals >= self.cfg.train.patience:
                state.stopped = True
        state.wall_s = time.monotonic() - started
        record = {'run': self.run, 'step': state.step, 'train_loss': running, 'val_loss': val, 'losses': parts,
                  'wall_s': round(state.wall_s, 2)}
        log.show(val=f'{val:.4g}', best=f'{state.best_val:.4g}')
        if self.rank == 0:
            log.write(record, {f'{self.run}/val_loss': val, f'{self.run}/train_loss': running,
                               **{f'{self.run}/val_{k}': v for k, v in parts.items()}}, state.step)
            self._save(state, val, improved)
        return record

    def _checkpoint(self, metrics: dict[str, Any]) -> Checkpoint:
        return student_checkpoint(self.student, self.student_cfg, self.data, self.teacher, self.cfg, self.run,
                                  metrics)

    def _save(self, state: TrainerState, val: float, improved: bool) -> None:
        """`last` (and `best` when it improved), and the trainer state that --resume continues from."""
        snapshot = self._checkpoint({'val_loss': val, 'best_val_loss': state.best_val, 'steps': state.step})
        ckpt_io.save(snapshot, self.run_dir / 'last')
        if improved:
            ckpt_io.save(snapshot, self.run_dir / 'best')
        self.student.train()
        tensors, optimizer_meta = self.algorithm.state_dict()
        tensors['generator'] = self.sampler.generator.get_state()
        save_trainer_state(self.run_dir, tensors, {**asdict(state), 'optimizer': optimizer_meta})

    def _resume(self) -> TrainerState:
        """Continue where the saved run stopped: the student of `last`, the heads, the optimizer and
        the batch generator (the learning rate schedule is a function of the step)."""
        tensors, meta = load_trainer_state(self.run_dir)
        state = TrainerState(**{f.name: meta[f.name] for f in fields(TrainerState)})
        self.student.load_state_dict(ckpt_io.load(self.run_dir / 'last').model.state_dict())
        self.algorithm.load_state_dict(tensors, meta['optimizer'])
        self.sampler.generator.set_state(tensors['generator'])
        if (self.run_dir / 'best').is_dir():
            self.best = ckpt_io.load(self.run_dir / 'best').model.state_dict()
        return state

    def _result(self, state: TrainerState) -> Checkpoint:
        """The best student on validation, saved as `best`, with the run's metrics."""
        if self.best is not None:
            self.student.load_state_dict(self.best)
        result = self._checkpoint({'best_val_loss': state.best_val, 'steps': state.step,
                                   'wall_s': round(state.wall_s, 2), 'early_stopped': bool(state.stopped)})
        if self.rank == 0:
            save_trainer_state(self.run_dir, None, {**asdict(state), 'optimizer': self.algorithm.state_dict()[1]})
            ckpt_io.save(result, self.run_dir / 'best')
        result.path = self.run_dir / 'best'
        return result


def train_student(data: Dataset, teacher: Checkpoint, cfg: DistillConfig, out: str | Path, run: str = 'offline',
                  student_cfg: StudentConfig | None = None, init: Checkpoint | None = None, steps: int | None = None,
                  resume: bool = False, progress: bool = True, on_eval: Callable[[int, dict], None] | None = None,
                  teacher_feature: str | None = None) -> Checkpoint:
    """Distil `teacher` into a new student (or continue `init`) on `data` for `steps` (default
    `train.steps`); returns the best student on validation, also written to `out/runs/<run>/best`
    (and `last` + trainer state for `resume`). See `DistillationRunner`.

    `on_eval(step, record)` is called after each evaluation (the distill node publishes it).
    `teacher_feature` overrides `losses.feature.teacher_feature` (a student teacher has `latent`)."""
    runner = DistillationRunner(data, teacher, cfg, out, run, student_cfg, init, teacher_feature)
    return runner.learn(steps or cfg.train.steps, resume=resume, progress=progress, on_eval=on_eval)
