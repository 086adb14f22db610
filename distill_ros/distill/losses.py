"""Distillation losses. Each returns a scalar averaged over the batch; `Distillation.loss` sums them by weight.

- `bc_loss`: behavioural cloning on the teacher's action mean (MSE or Huber).
- `gaussian_kl`: analytic KL between diagonal Gaussians, summed over action dimensions.
  Logit matching uses it forward, KL(teacher || student) (mean-seeking: the student covers the
  teacher's distribution), or reverse, KL(student || teacher) (mode-seeking).
- `feature_loss`: MSE between a learned projection of the student's latent and a teacher feature
  (RMA-style regression of the privileged latent from the sensor history).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

BC_KINDS = ('mse', 'huber')
KL_DIRECTIONS = ('forward', 'reverse')


def bc_loss(student_mean: torch.Tensor, teacher_mean: torch.Tensor, kind: str = 'mse',
            huber_delta: float = 1.0) -> torch.Tensor:
    """L_bc = E ‖ μ_θ − μ* ‖², summed over action dimensions (or the Huber loss of each difference)."""
    if kind == 'mse':
        return F.mse_loss(student_mean, teacher_mean, reduction='none').sum(-1).mean()
    if kind == 'huber':
        return F.huber_loss(student_mean, teacher_mean, reduction='none', delta=huber_delta).sum(-1).mean()
    raise ValueError(f'unknown behavioural cloning loss {kind!r}; expected one of {BC_KINDS}')


def gaussian_kl(mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) for diagonal Gaussians, summed over the last dimension, averaged over the batch."""
    var_p, var_q = std_p.pow(2), std_q.pow(2)
    kl = torch.log(std_q / std_p) + (var_p + (mean_p - mean_q).pow(2)) / (2.0 * var_q) - 0.5
    return kl.sum(-1).mean()


def logit_loss(student_mean, student_std, teacher_mean, teacher_std, direction: str = 'forward') -> torch.Tensor:
    """L_kl: KL(π* ‖ π_θ) (`forward`) or KL(π_θ ‖ π*) (`reverse`) of the Gaussian policies."""
    if direction == 'forward':
        return gaussian_kl(teacher_mean, teacher_std, student_mean, student_std)
    if direction == 'reverse':
        return gaussian_kl(student_mean, student_std, teacher_mean, teacher_std)
    raise ValueError(f'unknown KL direction {direction!r}; expected one of {KL_DIRECTIONS}')


def feature_loss(projected_student: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """L_feat = mean_j (P z_θ − f*)_j²: mean squared error per feature element (scale-free in the
    feature width); also the estimator head's loss against the standardized privileged state."""
    return F.mse_loss(projected_student, teacher_feature)
