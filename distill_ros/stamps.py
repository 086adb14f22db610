"""Time in integer nanoseconds: the unit of ROS 2 stamps, of datasets' `stamp_ns` and of the control
loop's clock. The one home of `NS_PER_S` and of the stamp <-> nanoseconds conversions.

No rclpy here (data/ and control/ use it): a stamp is any object with `sec` and `nanosec`, as a
`builtin_interfaces/msg/Time` from rclpy, from `rosbags` or from `distill_ros.data.cdr` has.
"""
from __future__ import annotations

NS_PER_S = 1_000_000_000


def stamp_ns(stamp) -> int:
    """Nanoseconds of a stamp (`msg.header.stamp`, `Clock.clock`)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def sec_nanosec(ns: int) -> tuple[int, int]:
    """The (sec, nanosec) pair of a stamp at `ns` nanoseconds."""
    return ns // NS_PER_S, ns % NS_PER_S


def stamp_text(ns: int) -> str:
    """`ns` as a stamp reads in a log: '12.000000345' (seconds, exact to the nanosecond)."""
    sec, nanosec = sec_nanosec(ns)
    return f'{sec}.{nanosec:09d}'
