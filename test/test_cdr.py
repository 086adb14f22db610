"""The fast JointState/Imu decoders agree with rosbags' decoder and with rclpy's encoder."""
from __future__ import annotations

import numpy as np
import pytest

from distill_ros.data import cdr
from distill_ros.data.bag import typestore


@pytest.mark.parametrize('names, position, velocity, frame', [
    (['a', 'bb', 'ccc'], [1.0, -2.5, 3.25], [], ''),
    (['slider', 'hinge'], [0.1, 0.2], [0.3, 0.4], 'odd_frame'),
    ([], [], [], 'x'),
    (['j' * 7], [np.pi], [np.e], 'abcdefg'),
])
def test_joint_state_matches_rosbags(names, position, velocity, frame):
    store = typestore()
    T = store.types
    msg = T['sensor_msgs/msg/JointState'](
        header=T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=12, nanosec=345), frame_id=frame),
        name=names, position=np.array(position, dtype=float), velocity=np.array(velocity, dtype=float),
        effort=np.zeros(0))
    raw = store.serialize_cdr(msg, 'sensor_msgs/msg/JointState')
    fast = cdr.joint_state(raw)
    assert (fast.header.stamp.sec, fast.header.stamp.nanosec, fast.header.frame_id) == (12, 345, frame)
    assert list(fast.name) == names   # a shared tuple
    np.testing.assert_array_equal(fast.position, position)
    np.testing.assert_array_equal(fast.velocity, velocity)


def test_imu_and_rclpy_encoding():
    pytest.importorskip('rclpy')
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Imu, JointState

    imu = Imu()
    imu.header.frame_id = 'imu_link'
    imu.header.stamp.sec, imu.header.stamp.nanosec = 3, 99
    imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = 0.1, 0.2, 0.3, 0.9
    imu.angular_velocity.x, imu.angular_velocity.z = 1.5, -2.0
    imu.linear_acceleration.y = 9.81
    fast = cdr.imu(serialize_message(imu))
    assert fast.header.frame_id == 'imu_link' and fast.header.stamp.nanosec == 99
    assert (fast.orientation.x, fast.orientation.w) == (0.1, 0.9)
    assert (fast.angular_velocity.x, fast.angular_velocity.z, fast.linear_acceleration.y) == (1.5, -2.0, 9.81)
    js = JointState(name=['hip', 'knee'], position=[1.0, 2.0], velocity=[3.0, 4.0])
    decoded = cdr.joint_state(serialize_message(js))  # rclpy's trailing bytes are ignored
    assert list(decoded.name) == ['hip', 'knee'] and decoded.velocity.tolist() == [3.0, 4.0]
