"""Translation between ROS 2 messages and the library's types (the only place nodes touch layouts).

Named vectors (privileged state, teacher actions, episode and step info) travel as
`sensor_msgs/JointState`: a standard, stamped type whose `name[]` and `position[]` carry element
names and values, so any ROS 2 tool can record, plot and replay them. Sensors travel exactly as a
robot driver publishes them: `sensor_msgs/JointState` (mapped by joint name) and `sensor_msgs/Imu`.
Nodes report on `/diagnostics` with `diagnostics` (diagnostic_updater is not in the wheels).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Imu, JointState

from distill_ros.observation import MalformedMessage, SensorMismatch, SensorReading, check_named_arrays
from distill_ros.stamps import sec_nanosec


def stamp(ns: int) -> Time:
    """The message stamp of a time in nanoseconds (back: `distill_ros.stamps.stamp_ns`)."""
    sec, nanosec = sec_nanosec(ns)
    return Time(sec=sec, nanosec=nanosec)


def named_vector(names: Sequence[str], values: Sequence[float] | np.ndarray, ns: int, frame_id: str = ''
                 ) -> JointState:
    msg = JointState()
    msg.header.stamp = stamp(ns)
    msg.header.frame_id = frame_id
    msg.name = list(names)
    msg.position = np.asarray(values, dtype=np.float64).tolist()
    return msg


def read_named_vector(msg: JointState, names: Sequence[str], topic: str) -> np.ndarray:
    """Values of `msg` in the order of `names` (matched by name). A malformed message (position
    not one value per name, duplicate names, NaN or Inf) raises `MalformedMessage`, a missing
    name `SensorMismatch`, each naming the topic."""
    try:
        check_named_arrays(msg.name, {'position': msg.position}, what='named vector')
    except MalformedMessage as exc:
        raise MalformedMessage(f'{topic}: {exc}') from None
    if list(msg.name) == list(names):
        values = np.asarray(msg.position, dtype=np.float64)
    else:
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [n for n in names if n not in index]
        if missing:
            raise SensorMismatch(f'{topic}: message lacks {missing}; expected names {list(names)}')
        position = msg.position
        values = np.array([position[index[n]] for n in names], dtype=np.float64)
    if not np.isfinite(values).all():
        raise MalformedMessage(f'{topic}: NaN or Inf in {[n for n, v in zip(names, values) if not np.isfinite(v)]}')
    return values


def joint_state(reading: SensorReading, ns: int, frame_id: str = '') -> JointState:
    msg = JointState()
    msg.header.stamp = stamp(ns)
    msg.header.frame_id = frame_id
    msg.name = list(reading.joint_position)
    msg.position = list(reading.joint_position.values())
    if reading.joint_velocity:
        msg.velocity = [reading.joint_velocity[j] for j in reading.joint_position]
    return msg


def imu(reading: SensorReading, ns: int, frame_id: str) -> Imu:
    msg = Imu()
    msg.header.stamp = stamp(ns)
    msg.header.frame_id = frame_id
    x, y, z, w = (float(v) for v in reading.orientation)
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = x, y, z, w
    ax, ay, az = (float(v) for v in reading.angular_velocity)
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = ax, ay, az
    lx, ly, lz = (float(v) for v in reading.linear_acceleration)
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = lx, ly, lz
    return msg


DIAGNOSTICS = '/diagnostics'
# DiagnosticStatus levels by name.
LEVEL = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN, 'error': DiagnosticStatus.ERROR}


def diagnostics(stamp: Time, name: str, level: str, message: str, hardware_id: str,
                values: Mapping[str, Any]) -> DiagnosticArray:
    """One node's report for /diagnostics: a single status at `level` ('ok', 'warn' or 'error')
    whose key-value pairs are `values`, written as text."""
    status = DiagnosticStatus(level=LEVEL[level], name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def twist_command(msg) -> tuple[float, float, float]:
    """A geometry_msgs/Twist on cmd_vel as a planar velocity command (vx, vy, yaw_rate)."""
    return msg.linear.x, msg.linear.y, msg.angular.z
