"""Offline distillation as one object (in the manner of rsl_rl's `algorithms/distillation.py`): the
student π_θ, the heads only training uses, the teacher's labels and AdamW, with a small fixed
interface: `loss(batch)`, `update(batch)`, `evaluate(batches)`, `state_dict()`/`load_state_dict()`.

The objective is docs/methods.md's, each term weighted by `losses.<term>.weight` (0: left out):

    L(θ) = w_bc · L_bc + w_kl · L_kl + w_feat · L_feat + w_est · L_est

    L_bc   = E ‖ μ_θ(h) − clip(μ*(s), a_lo, a_hi) ‖²            behavioural cloning (or Huber)
    L_kl   = E KL(π* ‖ π_θ)  (or KL(π_θ ‖ π*), `losses.kl.direction`)  logit matching, Gaussian
    L_feat = mean_j ( P z_θ(h) − f*(s) )_j²                       feature matching, projection P
    L_est  = mean_j ( E z_θ(h) − s̄ )_j²                          state estimator head E, s̄ standardized

h is the student's input (a history window, or a step sequence from a zero state for a recurrent
student), z_θ(h) its `latent`. The loop around it (batches, evaluation, early stopping, checkpoints,
resume, logging) is `trainer.DistillationRunner`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import torch
from torch import nn

from distill_ros.data.sampler import Batch
from distill_ros.distill.config import LossConfig, TrainConfig
from distill_ros.distill.labels import Labels
from distill_ros.distill.losses import bc_loss, feature_loss, logit_loss
from distill_ros.distill.run_files import load_optimizer, optimizer_tensors, prefixed
from distill_ros.policies.students import HistoryPolicy

HEADS = ('projection', 'estimator')


class StudentOutput(NamedTuple):
    mean: torch.Tensor                  # μ_θ(h)
    std: torch.Tensor                   # σ_θ
    projected: torch.Tensor | None      # P z_θ(h), feature matching's prediction of f*(s)
    state: torch.Tensor | None          # E z_θ(h), the estimator's prediction of the privileged state


class StudentHeads(nn.Module):
    """The student plus the feature projection P and the state estimator head E (both dropped
    after training); one module so DDP syncs them all."""

    def __init__(self, student: HistoryPolicy, feature_dim: int | None, state_dim: int | None = None):
        super().__init__()
        self.student = student
        self.projection = nn.Linear(student.latent_dim, feature_dim) if feature_dim else None
        self.estimator = nn.Linear(student.latent_dim, state_dim) if state_dim else None

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> StudentOutput:
        """Windows (batch, history, step_dim); or, for a recurrent student, step sequences
        (batch, T, step_dim) from a zero state with the `mask` of the steps that count."""
        if mask is None:
            mean, features = self.student.forward_features(inputs)
        else:
            mean, features, _ = self.student.forward_sequence(inputs)
            mean, features = mean[mask], {'latent': features['latent'][mask]}
        std = self.student.log_std.exp().expand_as(mean)
        latent = features['latent']
        return StudentOutput(mean, std, self.projection(latent) if self.projection is not None else None,
                             self.estimator(latent) if self.estimator is not None else None)


class Distillation:
    """The student π_θ trained on the teacher's `labels` with the weighted losses of `losses`
    (module docstring). `distributed`: the forward pass of `update` runs through
    DistributedDataParallel, which averages the gradients over the torchrun processes."""

    def __init__(self, student: HistoryPolicy, labels: Labels, losses: LossConfig, train: TrainConfig,
                 distributed: bool = False):
        self.labels, self.losses, self.train = labels, losses, train
        self.heads = StudentHeads(student, labels.feature.shape[1] if labels.feature is not None else None,
                                  labels.state.shape[1] if labels.state is not None else None)
        self.model = nn.parallel.DistributedDataParallel(self.heads) if distributed else self.heads
        self.optimizer = torch.optim.AdamW(self.heads.parameters(), lr=train.lr, weight_decay=train.weight_decay)

    @property
    def student(self) -> HistoryPolicy:
        return self.heads.student

    def loss(self, batch: Batch, model: nn.Module | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L(θ) on `batch` and its weighted terms by name ('bc', 'kl', 'feature', 'estimator')."""
        out = (model if model is not None else self.heads)(batch.inputs, batch.mask)
        target = self.labels.at(batch.index)
        w = self.losses
        terms = {}
        if w.bc.weight > 0:
            terms['bc'] = bc_loss(out.mean, target.action, w.bc.kind)
        if w.kl.weight > 0:
            terms['kl'] = logit_loss(out.mean, out.std, target.mean, target.std, w.kl.direction)
        if w.feature.weight > 0:
            terms['feature'] = feature_loss(out.projected, target.feature)
        if w.estimator.weight > 0:
            terms['estimator'] = feature_loss(out.state, target.state)
        total = 0.0
        for name, value in terms.items():
            total = total + getattr(w, name).weight * value
        return total, terms

    def set_learning_rate(self, step: int, steps: int) -> None:
        """`train.lr_schedule: cosine`: lr · (r + (1 − r) · (1 + cos(π k / K)) / 2) at step k of K,
        r = `train.lr_final_ratio`; a function of the step alone, so a resumed run continues it.
        The constant schedule leaves the rate as it is."""
        t = self.train
        if t.lr_schedule == 'cosine':
            ratio = t.lr_final_ratio + (1 - t.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * step / steps))
            for group in self.optimizer.param_groups:
                group['lr'] = t.lr * ratio

    def update(self, batch: Batch) -> float:
        """One AdamW step on L(θ) (gradient norm clipped to `train.grad_clip`); returns the loss."""
        total, _ = self.loss(batch, self.model)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.heads.parameters(), self.train.grad_clip)
        self.optimizer.step()
        return float(total.detach())

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> tuple[float, dict[str, float]]:
        """L(θ) and its terms averaged over every loss term of `batches` (the validation split)."""
        self.heads.eval()
        totals, parts, count = 0.0, {}, 0
        for batch in batches:
            size = len(batch.index)
            total, terms = self.loss(batch)
            totals += float(total) * size
            for k, v in terms.items():
                parts[k] = parts.get(k, 0.0) + float(v) * size
            count += size
        self.heads.train()
        return totals / count, {k: v / count for k, v in parts.items()}

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The optimizer's moments and the heads' weights as tensors, and the optimizer's param
        groups (the student's weights travel in its own checkpoint)."""
        tensors, meta = optimizer_tensors(self.optimizer)
        tensors = {f'opt.{k}': v for k, v in tensors.items()}
        for name in HEADS:
            head = getattr(self.heads, name)
            if head is not None:
                tensors.update({f'{name}.{k}': v.contiguous() for k, v in head.state_dict().items()})
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], optimizer_meta: dict[str, Any]) -> None:
        for name in HEADS:
            head = getattr(self.heads, name)
            if head is not None:
                head.load_state_dict(prefixed(tensors, name))
        load_optimizer(self.optimizer, prefixed(tensors, 'opt'), optimizer_meta)
