"""What a training run (distillation or fine-tuning) writes besides its checkpoints, in one place:

    OUT/learning_curve.jsonl            one JSON record per evaluation (`RunLog`)
    OUT/tensorboard/<run>/              the same as TensorBoard scalars (`RunLog`)
    OUT/runs/<run>/trainer_state.json   where the run stands, the optimizers' param groups
    OUT/runs/<run>/trainer_state.safetensors   optimizer moments, heads, RNG states (for --resume)

Both trainer-state files are written atomically (a temporary file renamed over the old one), so a
run killed while writing resumes from the previous evaluation. Nothing here unpickles.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

LEARNING_CURVE = 'learning_curve.jsonl'
TRAINER_STATE_JSON = 'trainer_state.json'
TRAINER_STATE_TENSORS = 'trainer_state.safetensors'


class RunLog:
    """How a training run reports: a tqdm bar (with `progress`), TensorBoard scalars under
    OUT/tensorboard/`name` and one JSON line per record in OUT/learning_curve.jsonl. Under torchrun
    only rank 0 reports (`active`: False elsewhere makes every method a no-op)."""

    def __init__(self, out: Path, name: str, total: int, initial: int, desc: str, unit: str, progress: bool,
                 active: bool = True):
        self.curve = out / LEARNING_CURVE
        self.active = active
        self.writer = None
        if active:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(out / 'tensorboard' / name))
            except ImportError:
                self.writer = None
        self.bar = None
        if progress and active:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, disable=None)

    def advance(self, **postfix: str) -> None:
        """One step (or iteration) done; `postfix` shown beside the bar."""
        if self.bar is not None:
            self.bar.update(1)
            if postfix:
                self.bar.set_postfix(**postfix)

    def show(self, **postfix: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**postfix)

    def write(self, record: dict[str, Any], scalars: dict[str, float], step: int) -> None:
        """Append `record` to the learning curve and `scalars` to TensorBoard at `step`."""
        if not self.active:
            return
        with open(self.curve, 'a') as f:
            f.write(json.dumps(record) + '\n')
        if self.writer is not None:
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as tensors `<param index>.<name>` (safetensors) and its param groups (JSON)."""
    sd = optimizer.state_dict()
    tensors = {f'{i}.{k}': (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
               for i, state in sd['state'].items() for k, v in state.items()}
    return tensors, {'param_groups': sd['param_groups']}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """The inverse of `optimizer_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        i, name = key.split('.', 1)
        state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({'state': state, 'param_groups': meta['param_groups']})


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors saved under `prefix.`, with the prefix taken off."""
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + '.')}


def has_trainer_state(run_dir: Path) -> bool:
    return (run_dir / TRAINER_STATE_JSON).is_file()


def save_trainer_state(run_dir: Path, tensors: dict[str, torch.Tensor] | None, meta: dict[str, Any]) -> None:
    """Write the trainer state atomically (`tensors` None: the JSON only, the tensors stay)."""
    if tensors is not None:
        _replace(run_dir / TRAINER_STATE_TENSORS, lambda tmp: save_file(tensors, str(tmp)))
    _replace(run_dir / TRAINER_STATE_JSON, lambda tmp: tmp.write_text(json.dumps(meta)))


def load_trainer_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return load_file(str(run_dir / TRAINER_STATE_TENSORS)), json.loads((run_dir / TRAINER_STATE_JSON).read_text())


def _replace(path: Path, write) -> None:
    tmp = path.with_name(path.name + '.tmp')
    write(tmp)
    os.replace(tmp, path)


def copy_checkpoint(src: Path, dst: Path) -> None:
    """Copy a checkpoint folder over `dst` (replaced only once the copy is complete)."""
    tmp = dst.with_name(dst.name + '.tmp')
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
