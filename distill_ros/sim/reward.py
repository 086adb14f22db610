"""The reward and termination of a task on a model file (env.model / env.menagerie), from its YAML.

Gymnasium's tasks bring their own; a robot's MJCF does not, so the task names weighted terms in the
style of legged_gym (velocity-command tracking, penalties on torque, action rate, base orientation
and height) and termination rules. Each policy step the reward is sum(weight * term); the formulas
are in docs/tasks.md. Velocities are the base's, at the base body's origin in the base body's frame
(`mjOBJ_XBODY`), never in its inertial frame: a model may rotate and offset its base inertia as it
likes (a Menagerie Go2's is turned about 90 degrees), and that must not swap the velocity's axes.
"""
from __future__ import annotations

import math

import mujoco
import numpy as np

from distill_ros.sim.model import name_id
from distill_ros.sim.task import TaskConfigError, TaskSpec

_BASE_TERMS = {'lin_vel_tracking', 'yaw_rate_tracking', 'lin_vel_z', 'ang_vel_xy', 'orientation', 'base_height'}


def base_body_id(task: TaskSpec, model: mujoco.MjModel) -> int:
    """The task's env.base_body, or the body of the model's free joint."""
    if task.base_body:
        return name_id(model, mujoco.mjtObj.mjOBJ_BODY, task.base_body, 'env.base_body', task.source)
    free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    if not free:
        raise TaskConfigError(f'{task.source}: the reward or termination needs the robot\'s base, and the model has '
                              f'no free joint; name it with env.base_body')
    return int(model.jnt_bodyid[free[0]])


class Reward:
    """`reset(command)` at an episode's start, then `step(action)` after each policy step gives
    (reward, terminated, {term: weighted value})."""

    def __init__(self, task: TaskSpec, model: mujoco.MjModel, data: mujoco.MjData, dt: float):
        self.task, self.model, self.data = task, model, data
        self.terms = [(name, term.weight, term.params) for name, term in task.reward.items()]
        rules = task.terminate
        needs_base = bool(_BASE_TERMS & set(task.reward)) or rules.base_height_below is not None \
            or rules.tilt_above is not None or bool(task.command)
        self.base = base_body_id(task, model) if needs_base else -1
        self._contact_bodies = np.array([name_id(model, mujoco.mjtObj.mjOBJ_BODY, name,
                                                 'terminate.contact_bodies entry', task.source)
                                         for name in rules.contact_bodies], dtype=int)
        self._cos_tilt = math.cos(rules.tilt_above) if rules.tilt_above is not None else None
        self._feet = np.zeros(0, dtype=int)
        if 'feet_air_time' in task.reward:
            if not task.contact_bodies:
                raise TaskConfigError(f'{task.source}: reward.feet_air_time needs the feet, named in '
                                      f'privileged.contact_bodies; that list is empty')
            self._feet = np.array([name_id(model, mujoco.mjtObj.mjOBJ_BODY, b, 'privileged.contact_bodies entry',
                                           task.source) for b in task.contact_bodies])
        self._dt = dt   # the policy step (the env's dt)
        self._air_time = np.zeros(len(self._feet))
        self._last_contact = np.zeros(len(self._feet), dtype=bool)
        self._velocity = np.zeros(6)
        self.command = np.zeros(3)
        self.tracking_error = (0.0, 0.0)   # after a step: |c_xy - v_xy| (m/s), |c_yaw - w_z| (rad/s)
        self._previous_action: np.ndarray | None = None

    def reset(self, command: np.ndarray) -> None:
        self.command = command
        self._previous_action = None
        self._air_time[:] = 0.0
        self._last_contact[:] = False

    def step(self, action: np.ndarray) -> tuple[float, bool, dict[str, float]]:
        m, d = self.model, self.data
        if self.base >= 0:
            rotation = d.xmat[self.base].reshape(3, 3)        # base -> world
            # mjOBJ_XBODY: the body frame; mjOBJ_BODY would be the inertial frame (at the centre of
            # mass, along the principal axes), which is the body frame only when the model says so.
            mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, self.base, self._velocity, 1)
            angular, linear = self._velocity[:3], self._velocity[3:]   # in the base frame
            gravity = -rotation[2]                             # projected gravity, base frame
            height = float(d.xpos[self.base, 2])
            self.tracking_error = (float(np.hypot(*(self.command[:2] - linear[:2]))),
                                   abs(float(self.command[2] - angular[2])))
        previous = action if self._previous_action is None else self._previous_action
        self._previous_action = action.copy()
        values = {}
        for name, weight, params in self.terms:
            if name == 'alive':
                value = 1.0
            elif name == 'lin_vel_tracking':
                error = self.command[:2] - linear[:2]
                value = math.exp(-float(error @ error) / params['sigma'])
            elif name == 'yaw_rate_tracking':
                value = math.exp(-(self.command[2] - angular[2]) ** 2 / params['sigma'])
            elif name == 'lin_vel_z':
                value = float(linear[2] ** 2)
            elif name == 'ang_vel_xy':
                value = float(angular[0] ** 2 + angular[1] ** 2)
            elif name == 'orientation':
                value = float(gravity[0] ** 2 + gravity[1] ** 2)
            elif name == 'base_height':
                value = (height - params['target']) ** 2
            elif name == 'torque':
                value = float(d.qfrc_actuator @ d.qfrc_actuator)
            elif name == 'feet_air_time':
                value = self._feet_air_time(params)
            else:  # action_rate
                change = action - previous
                value = float(change @ change)
            values[name] = weight * value
        return sum(values.values()), self.terminated(), values

    def _feet_air_time(self, params: dict[str, float]) -> float:
        """legged_gym's: at each foot's touchdown, its time in the air minus `target` (s); 0 when
        the commanded planar speed is under `min_command`. A contact counts over two policy steps."""
        d = self.data
        touching = self.model.geom_bodyid[d.contact.geom[:d.ncon]].ravel()
        contact = np.isin(self._feet, touching)
        held = contact | self._last_contact
        self._last_contact = contact
        touchdown = (self._air_time > 0.0) & held
        self._air_time += self._dt
        value = float((self._air_time - params['target']) @ touchdown)
        self._air_time[held] = 0.0
        if float(np.hypot(*self.command[:2])) < params['min_command']:
            return 0.0
        return value

    def base_velocity(self) -> np.ndarray:
        """After a step: the base's (vx, vy, yaw rate) in the base frame, as `tracking_error` compares them."""
        return np.array([self._velocity[3], self._velocity[4], self._velocity[2]])

    def terminated(self) -> bool:
        rules, d = self.task.terminate, self.data
        if rules.base_height_below is not None and d.xpos[self.base, 2] < rules.base_height_below:
            return True
        if self._cos_tilt is not None and d.xmat[self.base, 8] < self._cos_tilt:
            return True
        if self._contact_bodies.size and d.ncon:
            bodies = self.model.geom_bodyid[d.contact.geom[:d.ncon]]
            return bool(np.isin(bodies, self._contact_bodies).any())
        return False
