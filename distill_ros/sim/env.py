"""`DistillEnv`: a gymnasium MuJoCo task that yields a privileged and a sensor observation per step.

From one simulator state it produces

- `privileged_obs`: what only a simulator knows: true joint and base positions and velocities,
  contact forces on chosen bodies, and this episode's randomized dynamics parameters;
- `sensor_obs`: what a robot's hardware reports: joint encoders (noise, per-episode bias,
  quantization; velocities only where the task says the robot has them) and an IMU (gyro with
  bias, accelerometer, orientation estimate, each with noise), optionally delayed by whole steps.

Every episode is reproducible from its seed alone: the initial state, the dynamics draw, the
sensor biases, the latency and the noise sequence all derive from it.
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from distill_ros import contract as ct
from distill_ros.contract import ObsGroup, TermObsBuilder
from distill_ros.observation import COMMAND, COMMAND_ELEMENTS, Field, ObsSpec, SensorObsBuilder
from distill_ros.sim import model as mj
from distill_ros.sim.actuation import PositionActuation, deployment_record, joint_values, resolve
from distill_ros.sim.reward import Reward, base_body_id
from distill_ros.sim.task import POSITION, RANDOMIZABLE, TaskConfigError, TaskSpec, load_task

SENSOR = 'sensor'
PRIVILEGED = 'privileged'
_BASE_RAW = {ct.RAW_BASE_ANG_VEL, ct.RAW_BASE_LIN_VEL, ct.RAW_PROJECTED_GRAVITY, ct.RAW_BASE_HEIGHT}


class DistillEnv(gym.Env):
    """A task from `config/tasks/` with a privileged/sensor observation split.

    Observations are dicts `{'sensor': sensor_obs, 'privileged': privileged_obs}`; the layouts are
    `sensor_spec` and `privileged_spec`. `randomize`, `sensor_noise` and `latency` switch the
    three sim-to-real gaps off for debugging (dynamics then take the centre of each distribution).
    """

    metadata = {'render_modes': []}

    def __init__(self, task: TaskSpec | str, *, randomize: bool = True, sensor_noise: bool = True,
                 latency: bool = True):
        self.task = task if isinstance(task, TaskSpec) else load_task(task)
        self.randomize, self.sensor_noise, self.use_latency = randomize, sensor_noise, latency
        # A gymnasium task steps through its gymnasium env (its reward, termination, frame skip); a task on
        # a model file steps MuJoCo itself, with the task's actuation, reward and termination.
        self.position: PositionActuation | None = None
        if self.task.is_gymnasium:
            self._env = gym.make(self.task.env_id, xml_file=mj.model_file(self.task), disable_env_checker=True,
                                 **self.task.env_kwargs).unwrapped
            self.model: mujoco.MjModel = self._env.model
            self.data: mujoco.MjData = self._env.data
            self.decimation: int = int(self._env.frame_skip)   # physics steps per policy step
            self.dt: float = float(self._env.dt)
        else:
            self._env = None
            self.model = mj.mjcf_model(self.task)
            self.data = mujoco.MjData(self.model)
            self.decimation = self.task.actuation.decimation
            self.dt = float(self.model.opt.timestep) * self.decimation
        self.physics_timestep: float = float(self.model.opt.timestep)
        self.command = np.zeros(len(COMMAND_ELEMENTS))
        self._setup_sensors()
        self._setup_privileged()
        self.action_names: list[str] = mj.actuator_names(self.model)
        if self.task.is_gymnasium:
            self.action_space = self._env.action_space
        else:
            self._setup_actuation()
            self.reward = Reward(self.task, self.model, self.data, self.dt)
        self.observation_space = gym.spaces.Dict({
            SENSOR: gym.spaces.Box(-np.inf, np.inf, (self.sensor_spec.size,), np.float64),
            PRIVILEGED: gym.spaces.Box(-np.inf, np.inf, (self.privileged_spec.size,), np.float64),
        })
        self._nominal = {
            'mass_scale': (self.model.body_mass.copy(), self.model.body_inertia.copy()),
            'friction_scale': self.model.geom_friction[:, 0].copy(),
            'motor_strength': self.model.actuator_gear[:, 0].copy(),
            'pd': (self.model.actuator_gainprm[:, 0].copy(), self.model.actuator_biasprm[:, 1:3].copy(),
                   self.model.actuator_forcerange.copy()),
            'joint_damping_scale': self.model.dof_damping.copy(),
        }
        self.dynamics: dict[str, float] = {}
        self.episode_seed: int | None = None
        self._t = 0

    # ---------------------------------------------------------------- actuation (tasks on a model file)
    def _setup_actuation(self) -> None:
        """Torque: the actuators as the model has them. Position: every actuator becomes the PD law
        tau = kp (q* - q) - kd qdot on its joint, clipped to +-torque_limit, with ctrl = q*; MuJoCo
        evaluates it at every physics step (gain kp, affine bias -kp q - kd qdot, force range)."""
        m, task = self.model, self.task
        for a, name in enumerate(self.action_names):
            if m.actuator_trntype[a] != mujoco.mjtTrn.mjTRN_JOINT:
                raise TaskConfigError(f'{task.source}: actuator {a} ({name}) does not drive a joint; tasks on a '
                                      f'model file need one actuator per actuated joint')
        qpos_adr = [int(m.jnt_qposadr[m.actuator_trnid[a, 0]]) for a in range(m.nu)]
        self._actuated_qpos = np.array(qpos_adr, dtype=int)
        if task.actuation.type != POSITION:
            low = np.where(m.actuator_ctrllimited, m.actuator_ctrlrange[:, 0], -np.inf)
            high = np.where(m.actuator_ctrllimited, m.actuator_ctrlrange[:, 1], np.inf)
            self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
            return
        self.position = pd = resolve(task.actuation, self.action_names, task.source)
        m.actuator_dyntype[:] = mujoco.mjtDyn.mjDYN_NONE
        m.actuator_gaintype[:] = mujoco.mjtGain.mjGAIN_FIXED
        m.actuator_biastype[:] = mujoco.mjtBias.mjBIAS_AFFINE
        m.actuator_gainprm[:] = 0.0
        m.actuator_biasprm[:] = 0.0
        m.actuator_gainprm[:, 0] = pd.kp
        m.actuator_biasprm[:, 1] = -pd.kp
        m.actuator_biasprm[:, 2] = -pd.kd
        m.actuator_gear[:] = 0.0
        m.actuator_gear[:, 0] = 1.0
        m.actuator_ctrllimited[:] = 0
        m.actuator_forcelimited[:] = np.isfinite(pd.torque_limit)
        limit = np.where(np.isfinite(pd.torque_limit), pd.torque_limit, 0.0)
        m.actuator_forcerange[:] = np.stack([-limit, limit], axis=1)
        clip = np.full(m.nu, pd.action_clip, dtype=np.float32)
        self.action_space = gym.spaces.Box(-clip, clip, dtype=np.float32)

    # ---------------------------------------------------------------- layouts
    def _setup_sensors(self) -> None:
        task, model = self.task, self.model
        for name in task.sensor_joints:
            j = mj.name_id(model, mujoco.mjtObj.mjOBJ_JOINT, name, 'sensors.joints entry', task.source)
            if int(model.jnt_type[j]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                raise TaskConfigError(f'{task.source}: sensors.joints entry {name!r} is not a hinge or slide '
                                      f'joint; encoders measure one degree of freedom')
        has_imu = task.has_imu
        self.sensor_builder = SensorObsBuilder(task.sensor_joints, task.joint_velocity, has_imu,
                                               command=bool(task.command), sample_age=task.sample_age)
        self.sensor_spec: ObsSpec = self.sensor_builder.spec

        def adr(name: str) -> int:
            return int(model.sensor_adr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, name)])

        # One gather from MuJoCo's sensordata in sensor_spec order (quaternion wxyz -> ROS xyzw).
        index = [adr(mj.ENCODER_POSITION + j) for j in task.sensor_joints]
        enc, imu = task.encoder, task.imu_noise
        std = [enc.noise_std] * len(index)
        if task.joint_velocity:
            index += [adr(mj.ENCODER_VELOCITY + j) for j in task.sensor_joints]
            std += [enc.velocity_noise_std] * len(task.sensor_joints)
        if has_imu:
            gyro, accel, quat = adr(mj.IMU_GYRO), adr(mj.IMU_ACCEL), adr(mj.IMU_QUAT)
            index += [gyro, gyro + 1, gyro + 2, accel, accel + 1, accel + 2, quat + 1, quat + 2, quat + 3, quat]
            std += [imu.gyro_noise_std] * 3 + [imu.accel_noise_std] * 3 + [imu.orientation_noise_std] * 4
        self._sensor_index = np.asarray(index)
        # The velocity command and the sample age, when the task has them, close the sensor vector:
        # neither is a sensor reading (exact, never delayed).
        self._n_read = len(index)
        self._command = self.sensor_builder.command_slice
        self._age = self.sensor_builder.sample_age_index
        # noise (zero for the command) up to the sample age: the age leaves the noise draws unchanged
        self._noisy = self.sensor_spec.size - (1 if self._age is not None else 0)
        std += [0.0] * (self._noisy - len(std))
        self._noise_std = np.asarray(std, dtype=np.float64)
        n = len(task.sensor_joints)
        self._n_joints = n
        self._imu_start = (2 * n if task.joint_velocity else n) if has_imu else None
        self._bias = np.zeros(self._noisy)
        self._resolution = task.encoder.resolution
        self._noise_left = 0
        self._history = np.zeros((task.latency_steps[1] + 1, self.sensor_spec.size))
        self._head = 0
        self.latency_steps = 0
        # MjData arrays are views on fixed memory: keep them instead of re-wrapping on every step.
        self._qpos, self._qvel, self._sensordata = self.data.qpos, self.data.qvel, self.data.sensordata

    def _setup_privileged(self) -> None:
        self._terms: TermObsBuilder | None = None
        self._last_action = np.zeros(self.model.nu)
        if self.task.teacher_observation is not None:
            self._setup_teacher_terms(self.task.teacher_observation)
            return
        task, model = self.task, self.model
        qpos_names = mj.qpos_names(model)
        exclude = [self._root_alias(e, qpos_names) for e in task.qpos_exclude]
        unknown = [e for e, name in zip(task.qpos_exclude, exclude) if name not in qpos_names]
        if unknown:
            raise TaskConfigError(f'{task.source}: privileged.qpos_exclude names {unknown} not in the '
                                  f'model; qpos entries are {qpos_names}')
        self._qpos_keep = np.array([i for i, name in enumerate(qpos_names) if name not in exclude])
        fields = [Field('qpos', tuple(qpos_names[i] for i in self._qpos_keep)),
                  Field('qvel', tuple(mj.qvel_names(model)))]
        self._contact_ids = np.array([mj.name_id(model, mujoco.mjtObj.mjOBJ_BODY, b, 'privileged.contact_bodies '
                                                 'entry', task.source) for b in task.contact_bodies], dtype=int)
        if task.contact_bodies:
            fields.append(Field('contact_force', tuple(f'{b}/{a}' for b in task.contact_bodies
                                                       for a in ('fx', 'fy', 'fz'))))
        self._dynamics_names = [name for name in RANDOMIZABLE if name in task.randomization]
        if self._dynamics_names:
            fields.append(Field('dynamics', tuple(self._dynamics_names)))
        if task.command:
            fields.append(Field(COMMAND, COMMAND_ELEMENTS))
        # Sensor fields the task adds to the teacher's input, as the sensors read them.
        sensor_fields = {f.name: f for f in self.sensor_spec.fields}
        unknown = [name for name in task.sensor_fields if name not in sensor_fields]
        if unknown:
            raise TaskConfigError(f'{task.source}: privileged.sensor_fields names {unknown}; this task\'s sensor '
                                  f'fields are {list(sensor_fields)}')
        fields += [sensor_fields[name] for name in task.sensor_fields]
        self._sensor_slices = [self.sensor_spec.slice(name) for name in task.sensor_fields]
        self.privileged_spec = ObsSpec(fields)
        self._qpos_all = self._qpos_keep.size == self.model.nq

    def _setup_teacher_terms(self, group: ObsGroup) -> None:
        """The teacher reads `observation.teacher`'s terms, computed from the true state by the shared
        `TermObsBuilder` (privileged_spec: the group's layout)."""
        task, m = self.task, self.model
        actuated = mj.actuator_names(m)
        joints = list(group.joints)
        ids = [mj.name_id(m, mujoco.mjtObj.mjOBJ_JOINT, j, 'observation.teacher joint', task.source) for j in joints]
        self._term_qpos = np.array([m.jnt_qposadr[j] for j in ids], dtype=int)
        self._term_dof = np.array([m.jnt_dofadr[j] for j in ids], dtype=int)
        needs = group.needs()
        actions = list(group.action_names)
        if ct.RAW_LAST_ACTION in needs:
            missing = [j for j in actions if j not in actuated]
            if missing or len(actions) != len(actuated):
                raise TaskConfigError(f'{task.source}: observation.teacher has last_action over joints {actions}, '
                                      f'which must be the actuated joints {actuated} (any order); missing from them: '
                                      f'{missing}')
        # the executed action (actuator order) -> the order of the group's last action
        self._term_action = np.array([actuated.index(j) if j in actuated else 0 for j in actions], dtype=int)
        if task.actuation.type == POSITION:
            default = joint_values(task.actuation.default_pose, joints, 'actuation.default_pose', task.source)
        else:
            default = m.qpos0[self._term_qpos]
        self._term_base = base_body_id(task, m) if needs & _BASE_RAW else -1
        # A base on a free joint reads its pose and velocity from qpos/qvel (the state after the step;
        # xmat and cvel are from before the last physics substep).
        free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE
                and m.jnt_bodyid[j] == self._term_base]
        self._term_free = (int(m.jnt_qposadr[free[0]]), int(m.jnt_dofadr[free[0]])) if free else None
        self._contact_ids = np.array([mj.name_id(m, mujoco.mjtObj.mjOBJ_BODY, b, 'observation.teacher contact body',
                                                 task.source) for b in group.contact_bodies], dtype=int)
        self._dynamics_names = [name for name in RANDOMIZABLE if name in task.randomization]   # all drawn
        self._term_dynamics = list(group.dynamics)
        unknown = [d for d in self._term_dynamics if d not in task.randomization]
        if unknown:
            raise TaskConfigError(f'{task.source}: observation.teacher.dynamics names {unknown}; the task randomizes '
                                  f'{list(task.randomization)}')
        self._terms = TermObsBuilder(group, default)
        self._term_velocity = np.zeros(6)
        self.privileged_spec = self._terms.spec

    def _teacher_raw(self) -> dict[str, np.ndarray]:
        """The raw quantities of the teacher's terms, from the true state (base frame: the base body's
        own frame, not its inertial frame)."""
        d, needs = self.data, self._terms.group.needs()
        raw: dict[str, np.ndarray] = {}
        if self._term_free is not None:
            q, v = self._term_free
            quat = self._qpos[q + 3:q + 7]
            raw[ct.RAW_BASE_ANG_VEL] = self._qvel[v + 3:v + 6]                           # body frame already
            raw[ct.RAW_BASE_LIN_VEL] = ct.quat_rotate_inverse(quat, self._qvel[v:v + 3])  # world -> base frame
            raw[ct.RAW_PROJECTED_GRAVITY] = ct.projected_gravity(quat)
            raw[ct.RAW_BASE_HEIGHT] = self._qpos[q + 2:q + 3]
        elif self._term_base >= 0:
            b = self._term_base
            mujoco.mj_objectVelocity(self.model, d, mujoco.mjtObj.mjOBJ_XBODY, b, self._term_velocity, 1)
            raw[ct.RAW_BASE_ANG_VEL] = self._term_velocity[:3]
            raw[ct.RAW_BASE_LIN_VEL] = self._term_velocity[3:]
            raw[ct.RAW_PROJECTED_GRAVITY] = ct.projected_gravity(d.xquat[b])
            raw[ct.RAW_BASE_HEIGHT] = d.xpos[b, 2:3]
        if ct.RAW_JOINT_POS in needs:
            raw[ct.RAW_JOINT_POS] = self._qpos[self._term_qpos]
        if ct.RAW_JOINT_VEL in needs:
            raw[ct.RAW_JOINT_VEL] = self._qvel[self._term_dof]
        if ct.RAW_LAST_ACTION in needs:
            raw[ct.RAW_LAST_ACTION] = self._last_action[self._term_action]
        if ct.RAW_COMMAND in needs:
            raw[ct.RAW_COMMAND] = self.command
        if ct.RAW_CONTACT_FORCES in needs:
            clip = self.task.contact_force_clip
            raw[ct.RAW_CONTACT_FORCES] = np.clip(d.cfrc_ext[self._contact_ids, 3:6].ravel(), -clip, clip)
        if ct.RAW_DYNAMICS in needs:
            raw[ct.RAW_DYNAMICS] = np.array([self.dynamics[n] for n in self._term_dynamics])
        if ct.RAW_SAMPLE_AGE in needs:
            raw[ct.RAW_SAMPLE_AGE] = np.array([self.latency_steps * self.dt])
        return raw
    def _root_alias(self, element: str, qpos_names: list[str]) -> str:
        """`root/<e>` in privileged.qpos_exclude names the model's one free joint's element `<e>`
        whatever the joint is called (`floating_base/x` say), so the documented
        `qpos_exclude: [root/x, root/y]` fits any floating-base robot; the layout keeps the model's name."""
        joint, _, suffix = element.partition('/')
        if joint != mj.ROOT or element in qpos_names:
            return element
        free = mj.free_joint_name(self.model)
        return f'{free}/{suffix}' if free is not None else element

    # ---------------------------------------------------------------- episode
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode. `seed` fixes everything random in it; without one, the next seed is
        drawn from the environment's own generator. `options={'dynamics': {name: value}}` sets
        dynamics parameters instead of drawing them (unnamed ones are still drawn);
        `options={'command': (vx, vy, yaw_rate)}` sets a task's velocity command instead of the
        drawn one (drawn all the same, so the rest of the episode is still the seed's)."""
        super().reset(seed=seed)
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.episode_seed = episode_seed
        # One stream per episode, drawn in a fixed order: dynamics, initial state, sensor biases and
        # latency, then per-step noise. The seed alone reproduces the episode bit for bit.
        rng = np.random.Generator(np.random.PCG64(episode_seed))
        self._noise_rng = rng
        overrides = dict((options or {}).get('dynamics', {}))
        unknown = set(overrides) - set(self._dynamics_names)
        if unknown:
            raise ValueError(f'options.dynamics names {sorted(unknown)}; this task randomizes {self._dynamics_names}')
        self.dynamics = {}
        for name in self._dynamics_names:
            dist = self.task.randomization[name]
            drawn = dist.sample(rng) if self.randomize else dist.nominal
            self.dynamics[name] = float(overrides.get(name, drawn))
        self._dynamics_vector = np.array([self.dynamics[name] for name in self._dynamics_names])
        self._apply_dynamics()
        if self._env is not None:
            self._env.np_random = rng  # gymnasium draws the initial-state noise from it
            self._env.reset()
        else:
            self._reset_model(rng)
        if self.task.command:
            self.command = np.array([rng.uniform(*self.task.command[name]) for name in COMMAND_ELEMENTS])
            if (options or {}).get('command') is not None:
                self.set_command(*options['command'])
            self.reward.reset(self.command)
        elif self._env is None:
            self.reward.reset(self.command)
        self._t = 0
        self._last_action[:] = 0.0
        if self._terms is not None:
            self._terms.reset()
        self._draw_sensor_episode(rng)
        obs = self._observe(first=True)
        info = {'seed': episode_seed, 'dynamics': dict(self.dynamics), 'latency_steps': self.latency_steps}
        if self.task.command:
            info['command'] = dict(zip(COMMAND_ELEMENTS, self.command.tolist()))
        return obs, info

    def set_command(self, vx: float, vy: float, yaw_rate: float) -> None:
        """Set the velocity command from now on (in place in `command`: the next observations and the
        reward read it), e.g. from cmd_vel instead of the per-episode draw; the next reset draws anew."""
        if not self.task.command:
            raise ValueError(f'task {self.task.name!r} has no velocity command (no `command` in {self.task.source})')
        values = (float(vx), float(vy), float(yaw_rate))
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f'velocity command with NaN or Inf {list(values)}')
        self.command[:] = values

    def _reset_model(self, rng: np.random.Generator) -> None:
        """The model's initial state (actuated joints at the default pose under position actuation),
        with uniform noise of +-reset_noise_scale on the actuated joints and on every velocity."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        if self.position is not None:
            d.qpos[self._actuated_qpos] = self.position.default_pose
        scale = self.task.reset_noise_scale
        if scale > 0:
            d.qpos[self._actuated_qpos] += rng.uniform(-scale, scale, self._actuated_qpos.size)
            d.qvel[:] = rng.uniform(-scale, scale, m.nv)
        if self.position is not None:
            d.ctrl[:] = self.position.default_pose
        mujoco.mj_forward(m, d)

    def _apply_dynamics(self) -> None:
        m, nominal, d = self.model, self._nominal, self.dynamics
        mass, inertia = nominal['mass_scale']
        scale = d.get('mass_scale', 1.0)
        m.body_mass[:] = mass * scale
        m.body_inertia[:] = inertia * scale
        m.geom_friction[:, 0] = nominal['friction_scale'] * d.get('friction_scale', 1.0)
        if self.position is None:
            m.actuator_gear[:, 0] = nominal['motor_strength'] * d.get('motor_strength', 1.0)
        else:  # a PD motor's strength scales its gains and its torque limit alike
            strength = d.get('motor_strength', 1.0)
            gain, bias, force = nominal['pd']
            m.actuator_gainprm[:, 0] = gain * strength
            m.actuator_biasprm[:, 1:3] = bias * strength
            m.actuator_forcerange[:] = force * strength
        m.dof_damping[:] = nominal['joint_damping_scale'] * d.get('joint_damping_scale', 1.0)

    def _draw_sensor_episode(self, rng: np.random.Generator) -> None:
        task, n = self.task, self._n_joints
        self._bias[:] = 0.0
        lo, hi = task.latency_steps
        self.latency_steps = int(rng.integers(lo, hi + 1)) if self.use_latency else 0
        if self.sensor_noise:
            self._bias[:n] = rng.normal(0.0, task.encoder.bias_std, n) if task.encoder.bias_std else 0.0
            if self._imu_start is not None and task.imu_noise.gyro_bias_std:
                self._bias[self._imu_start:self._imu_start + 3] = rng.normal(0.0, task.imu_noise.gyro_bias_std, 3)
        self._noise_left = 0

    def _next_noise(self) -> np.ndarray:
        """This step's sensor error (bias + white noise), drawn in blocks: one generator call per
        `NOISE_BLOCK` steps keeps the per-step cost of the sensor model small."""
        if self._noise_left == 0:
            block = self._noise_rng.standard_normal((self.NOISE_BLOCK, self._bias.size))
            block *= self._noise_std
            block += self._bias
            self._noise_block, self._noise_left = block, self.NOISE_BLOCK
        self._noise_left -= 1
        return self._noise_block[self._noise_left]

    NOISE_BLOCK = 16

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f'action has shape {action.shape}, expected {self.action_space.shape} '
                             f'for joints {self.action_names}')
        if not math.isfinite(action.sum()):
            raise ValueError(f'action contains NaN or Inf: {action.tolist()}')
        if self._env is not None:
            _, reward, terminated, _, info = self._env.step(action)
        else:
            reward, terminated, info = self._step_model(action)
        self._last_action[:] = action   # as executed (what a teacher's last_action term reads)
        self._t += 1
        truncated = self._t >= self.task.max_episode_steps and not terminated
        return self._observe(), float(reward), bool(terminated), bool(truncated), info

    def _step_model(self, action: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        """One policy step of a task on a model file: `decimation` physics steps on one control."""
        self.data.ctrl[:] = action if self.position is None else self.position.targets(action)
        mujoco.mj_step(self.model, self.data, nstep=self.task.actuation.decimation)
        reward, terminated, terms = self.reward.step(action)
        info = {'reward_terms': terms}
        if self.task.command:
            info['tracking_error'] = self.reward.tracking_error
        return reward, terminated, info

    # ---------------------------------------------------------------- observations
    def _read_sensors(self, out: np.ndarray) -> None:
        """Write the sensor vector, in `sensor_spec` order, as the hardware reads it now, into `out`."""
        n, s = self._n_joints, self._imu_start
        # the command's and sample age's slots (a task with them) are filled undelayed by _observe
        np.take(self._sensordata, self._sensor_index, out=out[:self._n_read])
        if not self.sensor_noise:
            return
        out[:self._noisy] += self._next_noise()
        if self._resolution > 0:
            q = out[:n]
            q *= 1.0 / self._resolution
            np.rint(q, out=q)
            q *= self._resolution
        if s is not None:
            q = out[s + 6:s + 10]
            q *= 1.0 / math.sqrt(q.dot(q))

    def _observe(self, first: bool = False) -> dict[str, np.ndarray]:
        history, depth = self._history, self._history.shape[0]
        self._head = 0 if first else (self._head + 1) % depth
        self._read_sensors(history[self._head])
        if first:
            history[1:] = history[0]  # before the first reading arrives, a delayed sensor repeats it
        sensor = history[(self._head - self.latency_steps) % depth].copy()
        if self._command is not None:
            sensor[self._command] = self.command  # not a sensor reading: never delayed
        if self._age is not None:
            sensor[self._age] = self.latency_steps * self.dt  # how old the reading is
        return {SENSOR: sensor, PRIVILEGED: self.privileged_obs(sensor)}

    def privileged_obs(self, sensor: np.ndarray) -> np.ndarray:
        """The privileged observation of the current state, in `privileged_spec` order; `sensor` is
        this step's sensor observation (for the sensor fields the task adds). A task with teacher
        terms gives their vector (the builder keeps their history: call once per step)."""
        if self._terms is not None:
            return self._terms.build(self._teacher_raw())
        parts = [self._qpos if self._qpos_all else self._qpos[self._qpos_keep], self._qvel]
        if self._contact_ids.size:
            clip = self.task.contact_force_clip
            parts.append(np.clip(self.data.cfrc_ext[self._contact_ids, 3:6].ravel(), -clip, clip))
        if self._dynamics_names:
            parts.append(self._dynamics_vector)
        if self.task.command:
            parts.append(self.command)
        parts += [sensor[s] for s in self._sensor_slices]
        return np.concatenate(parts)  # one call: this runs every step

    @property
    def sim_time(self) -> float:
        return float(self.data.time)

    @property
    def elapsed_steps(self) -> int:
        return self._t

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


def deployment(task: TaskSpec | str) -> dict:
    """The deployment record of `task` (actuation.deployment_record): what a checkpoint trained on it
    carries so that its controller needs neither this task nor MuJoCo."""
    env = DistillEnv(task, randomize=False, sensor_noise=False, latency=False)
    try:
        return deployment_record(env.position, 1.0 / env.dt, env.action_names)
    finally:
        env.close()


def policy_rate_hz(task: TaskSpec | str) -> float:
    """The rate a task's policy acts at (1 / its env's dt): the rate a student of that task was
    trained at, and so the rate its controller must run (cartpole 25, hopper 125, ant 20, quadruped
    50 Hz)."""
    env = DistillEnv(task, randomize=False, sensor_noise=False, latency=False)
    try:
        return 1.0 / env.dt
    finally:
        env.close()
