"""A task from a robot model the user brings and the contract of the policy trained on it.

`task_from_contract` writes the task YAML a user would otherwise write by hand: the policy's PD gains,
default pose and action scale by joint, the decimation from the policy period, torque limits from the
model's own motors, the model's joint damping, armature and frictionloss left as they are, a floor
added when the model has none, the model's own IMU site when it has one, the teacher's observation as
the contract's terms, and a legged_gym-style velocity-tracking reward. `check_contract` compares a
contract with a task and names every disagreement (what `import-teacher --contract` refuses).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from distill_ros.contract import ContractError, PolicyContract, group_difference
from distill_ros.sim.task import TaskConfigError

# The quadruped task's reward and termination (config/tasks/quadruped.yaml), the usual legged_gym set.
LEGGED_REWARD: dict[str, Any] = {
    'lin_vel_tracking': {'weight': 1.0, 'sigma': 0.25}, 'yaw_rate_tracking': {'weight': 0.5, 'sigma': 0.25},
    'lin_vel_z': -2.0, 'ang_vel_xy': -0.05, 'orientation': -1.0, 'torque': -1.0e-4, 'action_rate': -0.01,
    'alive': 0.2}
DEFAULT_COMMAND = {'vx': [-1.0, 1.0], 'vy': [-0.5, 0.5], 'yaw_rate': [-1.0, 1.0]}
# What real encoders and an IMU add (the quadruped task's figures); the teacher reads the true state.
SENSOR_NOISE = {'encoder': {'noise_std': 0.002, 'bias_std': 0.005, 'resolution': 0.0005, 'velocity_noise_std': 0.05},
                'imu': {'gyro_noise_std': 0.02, 'gyro_bias_std': 0.01, 'accel_noise_std': 0.1,
                        'orientation_noise_std': 0.005},
                'latency_steps': [0, 1]}
COMMAND_KEYS = {'lin_vel_x': 'vx', 'lin_vel_y': 'vy', 'ang_vel_z': 'yaw_rate'}


def _model_facts(model_path: Path) -> dict[str, Any]:
    try:
        model = mujoco.MjModel.from_xml_path(str(model_path))
    except ValueError as exc:
        raise TaskConfigError(f'{model_path} is not a valid MuJoCo model: {exc}') from None

    def name(kind, i):
        return mujoco.mj_id2name(model, kind, i)
    free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    base = int(model.jnt_bodyid[free[0]]) if free else -1
    motors = {}
    for a in range(model.nu):
        if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT:
            joint = name(mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[a, 0])
            limit = math.inf
            if model.actuator_forcelimited[a]:
                limit = float(np.abs(model.actuator_forcerange[a]).max())
            elif model.actuator_ctrllimited[a] and model.actuator_gear[a, 0] != 0:
                limit = float(np.abs(model.actuator_ctrlrange[a]).max() * abs(model.actuator_gear[a, 0]))
            motors[joint] = limit
    planes = [g for g in range(model.ngeom) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE]
    sites = [name(mujoco.mjtObj.mjOBJ_SITE, s) for s in range(model.nsite)]
    bodies = [name(mujoco.mjtObj.mjOBJ_BODY, b) for b in range(model.nbody)]
    return {'timestep': float(model.opt.timestep), 'base': name(mujoco.mjtObj.mjOBJ_BODY, base) if base >= 0 else None,
            'motors': motors, 'has_floor': bool(planes), 'imu_site': 'imu' if 'imu' in sites else None,
            'feet': [b for b in bodies if b and b.lower().endswith('foot')],
            'joints': [name(mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]}


def task_from_contract(contract: PolicyContract, model: str | Path, name: str, out_dir: str | Path,
                       timestep: float | None = None, episode_s: float = 20.0) -> dict[str, Any]:
    """The task YAML (as a mapping) for `model` driven as `contract` says; `out_dir` is where the YAML
    will be written (the model path is stored relative to it). `timestep` is the physics step the
    policy was trained at (default: the model's own)."""
    model = Path(model).resolve()
    facts = _model_facts(model)
    where = f'{contract.source or "contract"}'
    missing = [j for j in contract.joints if j not in facts['joints']]
    if missing:
        raise ContractError(f'{where}: joints {missing} are not joints of {model}; its joints are '
                            f'{[j for j in facts["joints"] if j]}')
    unactuated = [j for j in contract.joints if j not in facts['motors']]
    extra = [j for j in facts['motors'] if j not in contract.joints]
    if unactuated or extra:
        raise ContractError(f'{where}: the policy drives {list(contract.joints)}; {model.name} has motors on '
                            f'{list(facts["motors"])} (without a motor: {unactuated}; not driven by the policy: '
                            f'{extra})')
    if facts['base'] is None:
        raise ContractError(f'{model}: no free joint; a legged robot\'s base must float (a <freejoint/> on its base)')
    if contract.stiffness is None or contract.damping is None:
        raise ContractError(f'{where}: stiffness and damping are missing; the task needs the PD gains the policy '
                            f'was trained with')
    dt = float(timestep or facts['timestep'])
    if contract.step_dt is None:
        raise ContractError(f'{where}: the policy period (step_dt) is missing; the task needs it for its decimation')
    decimation = contract.step_dt / dt
    if abs(decimation - round(decimation)) > 1e-6 or round(decimation) < 1:
        raise ContractError(f'{where}: the policy period {contract.step_dt} s is not a whole number of physics steps '
                            f'of {dt} s; give the physics step the policy was trained at (--timestep)')
    clip = 100.0 if contract.action_clip is None else max(abs(contract.action_clip[0]), abs(contract.action_clip[1]))
    if contract.action_offset != contract.default_joint_pos:
        raise ContractError(f'{where}: the action offset differs from the default pose; the task\'s position targets '
                            f'are default_pose + action_scale * action')
    limits = {j: facts['motors'][j] for j in contract.joints if math.isfinite(facts['motors'][j])}
    command = dict(DEFAULT_COMMAND)
    for key, value in contract.command_ranges.items():
        if key in COMMAND_KEYS:
            command[COMMAND_KEYS[key]] = [float(value[0]), float(value[1])]
    env: dict[str, Any] = {'model': os.path.relpath(model, Path(out_dir).resolve()),
                           'max_episode_steps': int(round(episode_s / contract.step_dt)), 'best_return': 1.0,
                           'reset_noise_scale': 0.05}
    if timestep is not None:
        env['timestep'] = dt
    if not facts['has_floor']:
        env['add_floor'] = True
    reward = dict(LEGGED_REWARD)
    privileged: dict[str, Any] = {}
    if facts['feet']:
        privileged = {'contact_bodies': facts['feet'], 'contact_force_clip': 500.0}
        reward['feet_air_time'] = {'weight': 1.0, 'target': 0.5}
    teacher = contract.observation.to_json()
    teacher['contact_bodies'] = privileged.get('contact_bodies', []) if 'contact_forces' in \
        [t.name for t in contract.observation.terms] else []
    return {
        'name': name,
        'description': f'{model.name} driven as {where} says (written by distill-ros make-task): PD, '
                       f'{contract.step_dt} s policy period, the contract\'s observation terms for the teacher, '
                       f'encoders, IMU and the velocity command for the student.',
        'env': env,
        'actuation': {'type': 'position', 'kp': contract.by_joint(contract.stiffness),
                      'kd': contract.by_joint(contract.damping),
                      'default_pose': contract.by_joint(contract.default_joint_pos),
                      'action_scale': contract.by_joint(contract.action_scale), 'action_clip': clip,
                      **({'torque_limit': limits} if limits else {}), 'decimation': int(round(decimation))},
        'imu': {'site': facts['imu_site']} if facts['imu_site'] else {'body': facts['base']},
        'sensors': {'joints': list(contract.joints), 'joint_velocity': True, **SENSOR_NOISE},
        **({'privileged': privileged} if privileged else {}),
        'command': command,
        'reward': reward,
        'terminate': {'contact_bodies': [facts['base']], 'tilt_above': 1.0},
        'observation': {'teacher': teacher},
        'randomization': {'friction_scale': {'dist': 'uniform', 'low': 0.5, 'high': 1.25},
                          'mass_scale': {'dist': 'uniform', 'low': 0.9, 'high': 1.1}},
    }


def check_contract(contract: PolicyContract, env) -> list[str]:
    """Every disagreement between `contract` and the task of `env` (a DistillEnv), in words; empty when
    the task drives and observes the robot as the policy was trained."""
    problems = []
    group = env.task.teacher_observation
    if group is None:
        problems.append('the task has no observation.teacher terms (its teacher reads raw privileged fields)')
    else:
        difference = group_difference(contract.observation, group)
        if difference:
            problems.append(f'observation: {difference} (contract first, task second)')
    position = env.position
    if position is None:
        problems.append('the task is not position-actuated')
        return problems
    index = [list(position.joints).index(j) for j in contract.joints if j in position.joints]
    missing = [j for j in contract.joints if j not in position.joints]
    if missing:
        problems.append(f'joints {missing} are not actuated by the task ({list(position.joints)})')
        return problems
    scale = np.broadcast_to(np.asarray(position.action_scale, dtype=np.float64), (len(position.joints),))
    for key, ours in (('default_joint_pos', position.default_pose), ('stiffness', position.kp),
                      ('damping', position.kd), ('action_scale', scale)):
        theirs = getattr(contract, key)
        if theirs is None:
            continue
        mine = np.asarray(ours)[index]
        if not np.allclose(mine, theirs, rtol=1e-6, atol=1e-9):
            bad = [f'{j}: contract {t:g}, task {m:g}' for j, t, m in zip(contract.joints, theirs, mine)
                   if not math.isclose(t, m, rel_tol=1e-6, abs_tol=1e-9)]
            problems.append(f'{key} differs ({"; ".join(bad[:4])}{"; ..." if len(bad) > 4 else ""})')
    if contract.step_dt is not None and not math.isclose(contract.step_dt, env.dt, rel_tol=1e-6):
        problems.append(f'policy period: contract {contract.step_dt} s, task {env.dt:g} s')
    return problems
