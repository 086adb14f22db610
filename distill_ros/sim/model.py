"""MuJoCo model preparation: the task's model (gymnasium's, a model file or a MuJoCo Menagerie robot)
with encoders and an IMU added, and name lookups."""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET

import gymnasium as gym
import mujoco

from distill_ros.sim.task import TaskConfigError, TaskSpec

# What the task adds to a model is named under `distill_ros/`, so it cannot clash with a robot's own
# elements: a robot's MJCF often has a site `imu` and sensors `imu_gyro`, `imu_quat` of its own.
PREFIX = 'distill_ros/'
IMU_SITE = PREFIX + 'imu'
IMU_GYRO = PREFIX + 'imu_gyro'
IMU_ACCEL = PREFIX + 'imu_accel'
IMU_QUAT = PREFIX + 'imu_quat'
ENCODER_POSITION = PREFIX + 'encoder_position/'
ENCODER_VELOCITY = PREFIX + 'encoder_velocity/'


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
    site = IMU_SITE
    if task.imu_site is not None:
        if root.find(f".//site[@name='{task.imu_site}']") is None:
            names = [s.get('name') for s in root.iter('site')]
            raise TaskConfigError(f'{task.source}: imu.site {task.imu_site!r} is not a site of the model; '
                                  f'sites are {names}')
        site = task.imu_site
    elif task.imu_body is not None:
        body = root.find(f".//body[@name='{task.imu_body}']")
        if body is None:
            names = [b.get('name') for b in root.iter('body')]
            raise TaskConfigError(f'{task.source}: imu.body {task.imu_body!r} is not a body of the model; '
                                  f'bodies are {names}')
        ET.SubElement(body, 'site', name=IMU_SITE, pos=' '.join(map(str, task.imu_pos)), size='0.01')
    if task.has_imu:
        ET.SubElement(sensor, 'gyro', name=IMU_GYRO, site=site)
        ET.SubElement(sensor, 'accelerometer', name=IMU_ACCEL, site=site)
        ET.SubElement(sensor, 'framequat', name=IMU_QUAT, objtype='site', objname=site)
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


def _menagerie_spec(task: TaskSpec) -> mujoco.MjSpec:
    """The default scene of MuJoCo Menagerie robot `task.menagerie`, through the `mujoco-menagerie`
    package (it downloads the robot on first use)."""
    how = ('install it with `pip install mujoco-menagerie` on a machine with internet and load the robot once '
           'there (it is then cached), or download the robot\'s MJCF and give its path as env.model')
    try:
        import mujoco_menagerie
    except ImportError:
        raise TaskConfigError(f'{task.source}: env.menagerie {task.menagerie!r} needs the MuJoCo Menagerie model, '
                              f'which must be downloaded first: the mujoco-menagerie package is not installed; '
                              f'{how}') from None
    try:
        robot = mujoco_menagerie.get(task.menagerie)
        return robot.spec(robot.default_scene)
    except Exception as exc:  # noqa: BLE001 - unknown robot, offline, damaged cache: one message, no traceback
        raise TaskConfigError(f'{task.source}: env.menagerie {task.menagerie!r}: cannot load the robot '
                              f'({type(exc).__name__}: {exc}); the model must be downloaded first: {how}') from None


def mjcf_model(task: TaskSpec) -> mujoco.MjModel:
    """The model of an env.model / env.menagerie task with the task's sensors added (as `model_xml`
    adds them to a gymnasium model). MjSpec edits the model in place, so a model's meshes and
    includes resolve from its own folder."""
    if task.menagerie:
        spec = _menagerie_spec(task)
    else:
        try:
            spec = mujoco.MjSpec.from_file(task.model_file)
        except ValueError as exc:
            raise TaskConfigError(f'{task.source}: env.model {task.model_file} is not a valid MuJoCo model: '
                                  f'{exc}') from None
    if task.timestep:
        spec.option.timestep = task.timestep   # env.timestep; the policy period is timestep * decimation
    joints = [j.name for j in spec.joints]
    for joint in task.sensor_joints:
        if joint not in joints:
            raise TaskConfigError(f'{task.source}: sensors.joints entry {joint!r} is not a joint of the model; '
                                  f'joints are {joints}')
        spec.add_sensor(name=ENCODER_POSITION + joint, type=mujoco.mjtSensor.mjSENS_JOINTPOS,
                        objtype=mujoco.mjtObj.mjOBJ_JOINT, objname=joint)
        if task.joint_velocity:
            spec.add_sensor(name=ENCODER_VELOCITY + joint, type=mujoco.mjtSensor.mjSENS_JOINTVEL,
                            objtype=mujoco.mjtObj.mjOBJ_JOINT, objname=joint)
    site_name = IMU_SITE
    if task.imu_site is not None:
        if spec.site(task.imu_site) is None:
            raise TaskConfigError(f'{task.source}: imu.site {task.imu_site!r} is not a site of the model; '
                                  f'sites are {[s.name for s in spec.sites]}')
        site_name = task.imu_site   # the model's own IMU site: its body, position and frame
    elif task.imu_body is not None:
        body = spec.body(task.imu_body)
        if body is None:
            raise TaskConfigError(f'{task.source}: imu.body {task.imu_body!r} is not a body of the model; '
                                  f'bodies are {[b.name for b in spec.bodies]}')
        body.add_site(name=IMU_SITE, pos=list(task.imu_pos), size=[0.01, 0.0, 0.0])
    if task.has_imu:
        site = {'objtype': mujoco.mjtObj.mjOBJ_SITE, 'objname': site_name}
        spec.add_sensor(name=IMU_GYRO, type=mujoco.mjtSensor.mjSENS_GYRO, **site)
        spec.add_sensor(name=IMU_ACCEL, type=mujoco.mjtSensor.mjSENS_ACCELEROMETER, **site)
        spec.add_sensor(name=IMU_QUAT, type=mujoco.mjtSensor.mjSENS_FRAMEQUAT, **site)
    model = _compile(spec, task)
    ground = _ground_geoms(model)
    if task.add_floor and ground:
        raise TaskConfigError(f'{task.source}: env.add_floor is true but the model has a floor already (geoms '
                              f'{ground[:3]}); drop env.add_floor')
    if task.add_floor:
        spec.worldbody.add_geom(name=FLOOR, type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0.0, 0.0, 0.05],
                                contype=1, conaffinity=1)   # collides with every geom of contype or conaffinity 1
        spec.worldbody.add_light(name=PREFIX + 'light', pos=[0.0, 0.0, 3.0], dir=[0.0, 0.0, -1.0])
        return _compile(spec, task)
    has_free = any(model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE for j in range(model.njnt))
    if has_free and not ground and task.add_floor is None:
        raise TaskConfigError(f'{task.source}: the model has a floating base (a free joint) but no floor (no '
                              f'collidable geom fixed to the world), so the robot would fall forever; add '
                              f'`add_floor: true` to the task\'s env section (or `add_floor: false` if it should '
                              f'float)')
    return model


FLOOR = PREFIX + 'floor'


def _compile(spec: mujoco.MjSpec, task: TaskSpec) -> mujoco.MjModel:
    try:
        return spec.compile()
    except ValueError as exc:
        raise TaskConfigError(f'{task.source}: the model does not compile with the task\'s sensors: {exc}') from None


def _ground_geoms(model: mujoco.MjModel) -> list[str]:
    """Names of the collidable geoms fixed to the world (a floor plane, a height field, terrain boxes)."""
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or f'geom {g}' for g in range(model.ngeom)
            if model.body_weldid[model.geom_bodyid[g]] == 0 and (model.geom_contype[g] or model.geom_conaffinity[g])]


def name_id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str, what: str, source: str) -> int:
    index = mujoco.mj_name2id(model, kind, name)
    if index < 0:
        word, count = {mujoco.mjtObj.mjOBJ_JOINT: ('joint', model.njnt),
                       mujoco.mjtObj.mjOBJ_BODY: ('body', model.nbody)}[kind]
        names = [mujoco.mj_id2name(model, kind, i) for i in range(count)]
        raise TaskConfigError(f'{source}: {what} {name!r} is not a {word} of the model; '
                              f'{"bodies" if word == "body" else "joints"} are {names}')
    return index


_QPOS_SUFFIX = {int(mujoco.mjtJoint.mjJNT_FREE): ('x', 'y', 'z', 'qw', 'qx', 'qy', 'qz'),
                int(mujoco.mjtJoint.mjJNT_BALL): ('qw', 'qx', 'qy', 'qz')}
_QVEL_SUFFIX = {int(mujoco.mjtJoint.mjJNT_FREE): ('vx', 'vy', 'vz', 'wx', 'wy', 'wz'),
                int(mujoco.mjtJoint.mjJNT_BALL): ('wx', 'wy', 'wz')}


ROOT = 'root'


def joint_names(model: mujoco.MjModel) -> list[str]:
    """Each joint's name as the task's layouts use it: the model's name; an unnamed free joint (a
    floating base written `<freejoint/>`) is `root` (then `root_1`, ...), so its elements read
    `root/x` ... whatever the model calls it; any other unnamed joint is `joint<id>`. A model's
    own names are kept as they are (the built-in tasks' layouts depend on them)."""
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]
    taken = set(filter(None, names))
    for j, name in enumerate(names):
        if name:
            continue
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            candidate, n = ROOT, 0
            while candidate in taken:
                n += 1
                candidate = f'{ROOT}_{n}'
        else:
            candidate = f'joint{j}'
        names[j] = candidate
        taken.add(candidate)
    return names


def free_joint_name(model: mujoco.MjModel) -> str | None:
    """The name (`joint_names`) of the model's one free joint; None without one or with several."""
    free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    return joint_names(model)[free[0]] if len(free) == 1 else None


def _element_names(model: mujoco.MjModel, suffixes: dict[int, tuple[str, ...]]) -> list[str]:
    names = []
    for j, name in enumerate(joint_names(model)):
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
    names = joint_names(model)
    return [names[model.actuator_trnid[a, 0]] for a in range(model.nu)]
