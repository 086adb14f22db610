"""Does an imported teacher behave in our simulator as in its own loop? (`distill-ros check-teacher`)

A teacher trained elsewhere (Isaac Lab, mjlab, rsl_rl on its own MuJoCo loop) is only useful here if
the task reproduces what it was trained on: the same observation terms, joint order, PD gains,
decimation and the model's own joint damping and armature. This check runs the teacher on the task
with randomization, sensor noise and latency off, on fixed velocity commands, and reports per
command the mean base-frame velocity over the settled window, the tracking error and falls; given
the teacher's own loop's reference (`reference.json`, format below), it prints both side by side and
the difference, and replays the reference's recorded observations through the imported policy (its
actions must equal the recorded ones: the import itself is exact).

reference.json (written by the user's training loop, e.g. bench/outside_teacher):

    {"commands": [{"command": [vx, vy, yaw_rate], "settle_s": 2.0, "duration_s": 10.0,
                   "mean_velocity": [vx, vy, yaw_rate], "fell": false}, ...],
     "trace": {"observations": [[...], ...], "actions": [[...], ...], "joints": [policy joint order]}}

`trace` is optional; its actions are in the policy's own joint order (`joints`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distill_ros.paths import load_user_json

DEFAULT_COMMANDS = ((0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (1.0, 0.0, 0.0), (-0.5, 0.0, 0.0), (0.0, 0.3, 0.0),
                    (0.0, 0.0, 0.5))
TOLERANCE_M_S = 0.05   # issue target: the imported teacher tracks within 0.05 m/s of its own loop


@dataclass
class CommandResult:
    command: tuple[float, float, float]
    mean_velocity: np.ndarray          # vx, vy, yaw rate over the settled window, base frame
    tracking_error: float              # mean |c_xy - v_xy| over the settled window (m/s)
    fell: bool
    reference: dict[str, Any] | None = None

    @property
    def difference(self) -> float | None:
        """|our mean planar velocity - the reference loop's| (m/s)."""
        if self.reference is None:
            return None
        theirs = np.asarray(self.reference['mean_velocity'], dtype=np.float64)
        return float(np.hypot(*(self.mean_velocity[:2] - theirs[:2])))


@dataclass
class CheckReport:
    results: list[CommandResult]
    action_trace_error: float | None = None     # max |imported(obs) - recorded action| over the trace
    trace_steps: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool | None:
        diffs = [r.difference for r in self.results if r.difference is not None]
        if not diffs:
            return None
        ok = max(diffs) <= TOLERANCE_M_S and not any(r.fell and not r.reference.get('fell') for r in self.results)
        return ok and (self.action_trace_error is None or self.action_trace_error < 1e-4)

    def table(self) -> str:
        lines = ['| command vx, vy, yaw | ours: vx, vy, yaw (fell) | reference loop | planar diff (m/s) |',
                 '|---|---|---|---|']
        for r in self.results:
            ours = ', '.join(f'{v:+.3f}' for v in r.mean_velocity) + (' (fell)' if r.fell else '')
            theirs = '–' if r.reference is None else ', '.join(f'{v:+.3f}' for v in r.reference['mean_velocity']) + \
                (' (fell)' if r.reference.get('fell') else '')
            diff = '–' if r.difference is None else f'{r.difference:.3f}'
            lines.append(f'| {", ".join(f"{c:+.2f}" for c in r.command)} | {ours} | {theirs} | {diff} |')
        if self.action_trace_error is not None:
            lines.append(f'\nrecorded trace: {self.trace_steps} observations through the imported teacher, max |action '
                         f'difference| {self.action_trace_error:.2e}')
        verdict = self.passed
        if verdict is not None:
            lines.append(f'verdict: {"PASS" if verdict else "FAIL"} (planar velocity within {TOLERANCE_M_S} m/s of '
                         f'the reference loop on every command, no extra falls, the import exact)')
        return '\n'.join(lines + self.notes)


def load_reference(path: str | Path) -> dict[str, Any]:
    """A reference.json, checked enough that a wrong file is refused in one line naming the key."""
    data = load_user_json(path, 'reference file')
    if not isinstance(data, dict) or not isinstance(data.get('commands'), list) or not data['commands']:
        raise ValueError(f'reference file {path}: expected {{"commands": [{{"command": [vx, vy, yaw], "mean_velocity": '
                         f'[...], ...}}, ...]}} (docs/teachers.md)')
    for i, entry in enumerate(data['commands']):
        for key in ('command', 'mean_velocity'):
            value = entry.get(key) if isinstance(entry, dict) else None
            if not isinstance(value, list) or len(value) != 3:
                raise ValueError(f'reference file {path}: commands[{i}].{key} must be 3 numbers, got {value!r}')
    trace = data.get('trace')
    if trace is not None and (not isinstance(trace, dict) or len(trace.get('observations', [])) !=
                              len(trace.get('actions', [])) or 'joints' not in trace):
        raise ValueError(f'reference file {path}: trace needs observations and actions of the same length and '
                         f'the policy joints')
    return data


def run_command(env, teacher, command: Sequence[float], settle_s: float, duration_s: float,
                seed: int = 0) -> CommandResult:
    """The teacher on one fixed command: mean base-frame velocity after `settle_s`, over `duration_s`."""
    from distill_ros.distill.evaluate import PolicyActor

    actor = PolicyActor(teacher)
    obs, _ = env.reset(seed=seed, options={'command': tuple(command)})
    actor.reset()
    settle, total = round(settle_s / env.dt), round((settle_s + duration_s) / env.dt)
    velocities, errors, fell = [], [], False
    for step in range(total):
        obs, _, terminated, truncated, info = env.step(actor(obs))
        if step >= settle:
            velocities.append(env.reward.base_velocity())
            errors.append(info['tracking_error'][0])
        if terminated:
            fell = True
            break
        if truncated:   # an episode shorter than the check: keep going from a fresh reset would change it
            break
    mean = np.mean(velocities, axis=0) if velocities else np.full(3, np.nan)
    return CommandResult(tuple(float(c) for c in command), mean, float(np.mean(errors)) if errors else float('nan'),
                         fell)


def check_teacher(env, teacher, reference: dict[str, Any] | None = None,
                  commands: Sequence[Sequence[float]] = DEFAULT_COMMANDS, settle_s: float = 2.0,
                  duration_s: float = 8.0) -> CheckReport:
    """Run `teacher` on `env` (built with randomization, noise and latency off) on the reference's
    commands (or `commands`), and replay the reference's trace through it."""
    if not env.task.command:
        raise ValueError(f'task {env.task.name!r} has no velocity command; check-teacher compares velocity tracking')
    results = []
    entries = reference['commands'] if reference else [{'command': list(c)} for c in commands]
    for entry in entries:
        result = run_command(env, teacher, entry['command'], float(entry.get('settle_s', settle_s)),
                             float(entry.get('duration_s', duration_s)))
        result.reference = entry if reference else None
        results.append(result)
    report = CheckReport(results)
    trace = (reference or {}).get('trace')
    if trace:
        obs = np.asarray(trace['observations'], dtype=np.float64)
        recorded = np.asarray(trace['actions'], dtype=np.float64)
        order = [list(trace['joints']).index(j) for j in teacher.action_names]   # policy order -> ours
        ours = np.array([teacher.act(o) for o in obs])
        unclipped = np.clip(recorded[:, order], teacher.action_low, teacher.action_high)
        report.action_trace_error = float(np.abs(ours - unclipped).max())
        report.trace_steps = len(obs)
    return report
