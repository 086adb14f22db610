"""MuJoCo model preparation: the task's gymnasium model with an IMU added, and name lookups."""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET

import gymnasium as gym
import mujoco

from distill_ros.sim.task import TaskConfigError, TaskSpec

IMU_SITE = 'imu'
IMU_GYRO = 'imu_gyro'
IMU_ACCEL = 'imu_accel'
IMU_QUAT = 'imu_quat'
ENCODER_POSITION = 'encoder_position/'
ENCODER_VELOCITY = 'encoder_velocity/'


@functools.cache
def _gymnasium_model_path(env_id: str) -> str:
    try:
        env = gym.make(env_id, disable_env_checker=True)
    except gym.error.Error as exc:
        raise TaskConfigError(f'env.id {env_id!r} is not a gymnasium environment: {exc}') from exc
    path = getattr(env.unwrapped, 'fullpath', None)
    env.close()
    if path is None:
        raise TaskConfigError(f'env.id {env_id!r} is not a gymnasium MuJoCo environment (no model file)')
    return path


def model_xml(task: TaskSpec) -> str:
    """The gymnasium model of `task` with its sensors added: an encoder (jointpos, and jointvel where
    the robot reports velocity) per sensed joint, and an IMU site with gyro, accelerometer and
    orientation sensors.

    MuJoCo evaluates sensors inside `mj_step` before integrating, so a reading taken after a step
    describes the state at the start of the step's last physics substep, as a real sensor that
    samples slightly before the controller reads it.
    """
    tree = ET.parse(_gymnasium_model_path(task.env_id))
    root = tree.getroot()
    for joint_name, body_name in task.name_bodies.items():
        # Some gymnasium models leave bodies unnamed (the Ant's feet); name them by the joint they hold.
        body = root.find(f".//joint[@name='{joint_name}']/..")
        if body is None or body.tag != 'body':
            raise TaskConfigError(f'{task.source}: model.name_bodies key {joint_name!r} is not a joint of the model')
        body.set('name', body_name)
    sensor = root.find('sensor')
    if sensor is None:
        sensor = ET.SubElement(root, 'sensor')
    # Joint encoders as MuJoCo sensors, so every reading comes from the same sensor pipeline.
    for joint in task.sensor_joints:
        if root.find(f".//joint[@name='{joint}']") is None:
            names = [j.get('name') for j in root.iter('joint')]
            raise TaskConfigError(f'{task.source}: sensors.joints entry {joint!r} is not a joint of the model; '
                                  f'joints are {names}')
        ET.SubElement(sensor, 'jointpos', name=ENCODER_POSITION + joint, joint=joint)
        if task.joint_velocity:
            ET.SubElement(sensor, 'jointvel', name=ENCODER_VELOCITY + joint, joint=joint)
    if task.imu_body is not None:
        body = root.find(f".//body[@name='{task.imu_body}']")
        if body is None:
            names = [b.get('name') for b in root.iter('body')]
            raise TaskConfigError(f'{task.source}: imu.body {task.imu_body!r} is not a body of the model; '
                                  f'bodies are {names}')
        ET.SubElement(body, 'site', name=IMU_SITE, pos=' '.join(map(str, task.imu_pos)), size='0.01')
        ET.SubElement(sensor, 'gyro', name=IMU_GYRO, site=IMU_SITE)
        ET.SubElement(sensor, 'accelerometer', name=IMU_ACCEL, site=IMU_SITE)
        ET.SubElement(sensor, 'framequat', name=IMU_QUAT, objtype='site', objname=IMU_SITE)
    return ET.tostring(root, encoding='unicode')


def model_file(task: TaskSpec) -> str:
    """Write the task's model to a content-addressed temporary file (gymnasium loads from a path)."""
    xml = model_xml(task)
    digest = hashlib.sha256(xml.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f'distill_ros_{task.name}_{digest}.xml')
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.xml')
        with os.fdopen(fd, 'w') as f:
            f.write(xml)
        os.replace(tmp, path)  # atomic: concurrent processes never read a half-written file
    return path


def name_id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str, what: str, source: str) -> int:
    index = mujoco.mj_name2id(model, kind, name)
    if index < 0:
        count = {mujoco.mjtObj.mjOBJ_JOINT: model.njnt, mujoco.mjtObj.mjOBJ_BODY: model.nbody}[kind]
        names = [mujoco.mj_id2name(model, kind, i) for i in range(count)]
        raise TaskConfigError(f'{source}: {what} {name!r} is not in the model; available: {names}')
    return index


_QPOS_SUFFIX = {int(mujoco.mjtJoint.mjJNT_FREE): ('x', 'y', 'z', 'qw', 'qx', 'qy', 'qz'),
                int(mujoco.mjtJoint.mjJNT_BALL): ('qw', 'qx', 'qy', 'qz')}
_QVEL_SUFFIX = {int(mujoco.mjtJoint.mjJNT_FREE): ('vx', 'vy', 'vz', 'wx', 'wy', 'wz'),
                int(mujoco.mjtJoint.mjJNT_BALL): ('wx', 'wy', 'wz')}


def _element_names(model: mujoco.MjModel, suffixes: dict[int, tuple[str, ...]]) -> list[str]:
    names = []
    for j in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        suffix = suffixes.get(int(model.jnt_type[j]))
        names += [f'{name}/{s}' for s in suffix] if suffix else [name]
    return names


def qpos_names(model: mujoco.MjModel) -> list[str]:
    """One name per qpos entry: the joint name, or `joint/x` ... `joint/qz` for free and ball joints."""
    return _element_names(model, _QPOS_SUFFIX)


def qvel_names(model: mujoco.MjModel) -> list[str]:
    """One name per qvel entry: the joint name, or `joint/vx` ... `joint/wz` for free and ball joints."""
    return _element_names(model, _QVEL_SUFFIX)


def actuator_names(model: mujoco.MjModel) -> list[str]:
    """Action names: the joint each actuator drives, as ros2_control command interfaces name them."""
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[a, 0])
            for a in range(model.nu)]
