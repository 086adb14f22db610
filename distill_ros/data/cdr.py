"""Fast decoders for the two message types the recorder and bag replay read at high rates.

`sensor_msgs/msg/JointState` and `sensor_msgs/msg/Imu` in little-endian CDR (what ROS 2 sends and
rosbag2 stores) are decoded with `struct` and `numpy.frombuffer` into light objects with the same
field names as rclpy and `rosbags` messages, several times faster than a generic decoder. Anything
else (another type, big-endian data) goes to `rosbags`' decoder. A test checks both agree.

Truncated or corrupt bytes raise `CdrError`, never a message with wrong fields.
"""
from __future__ import annotations

import struct

import numpy as np

_U32 = struct.Struct('<I')
_TIME = struct.Struct('<iI')
_F64x4 = struct.Struct('<4d')
_F64x3 = struct.Struct('<3d')


class CdrError(ValueError):
    """Bytes that are not a valid CDR encoding of the expected message type."""


class Stamp:
    __slots__ = ('sec', 'nanosec')

    def __init__(self, sec: int, nanosec: int):
        self.sec, self.nanosec = sec, nanosec


class Header:
    __slots__ = ('stamp', 'frame_id')

    def __init__(self, stamp: Stamp, frame_id: str):
        self.stamp, self.frame_id = stamp, frame_id


class JointStateMsg:
    __slots__ = ('header', 'name', 'position', 'velocity', 'effort')


class Vec:
    __slots__ = ('x', 'y', 'z', 'w')


class ImuMsg:
    __slots__ = ('header', 'orientation', 'angular_velocity', 'linear_acceleration')


def _string(buf, pos: int) -> tuple[str, int]:
    """A CDR string at `pos` (already aligned): u32 length including the NUL, bytes, NUL."""
    (n,) = _U32.unpack_from(buf, pos)
    end = pos + 4 + n
    if n == 0 or end > len(buf) or buf[end - 1] != 0:
        raise CdrError(f'string at byte {pos}: length {n} does not fit the {len(buf)}-byte message or '
                       f'lacks its terminating NUL')
    return bytes(buf[pos + 4:end - 1]).decode(), end


def _header(buf, pos: int) -> tuple[Header, int]:
    sec, nanosec = _TIME.unpack_from(buf, pos)
    frame_id, pos = _string(buf, pos + 8)
    return Header(Stamp(sec, nanosec), frame_id), pos


def _strings(buf, pos: int) -> tuple[list[str], int]:
    pos = (pos + 3) & ~3
    (count,) = _U32.unpack_from(buf, pos)
    pos += 4
    if count > (len(buf) - pos) // 5:   # each string takes at least 5 bytes
        raise CdrError(f'sequence of {count} strings does not fit the {len(buf)}-byte message')
    out = []
    for _ in range(count):
        text, pos = _string(buf, (pos + 3) & ~3)
        out.append(text)
    return out, pos


_EMPTY = np.zeros(0)
_EMPTY.flags.writeable = False


def _doubles(buf, pos: int) -> tuple[np.ndarray, int]:
    pos = (pos + 3) & ~3
    (count,) = _U32.unpack_from(buf, pos)
    pos += 4
    if not count:
        return _EMPTY, pos
    pos = (pos + 7) & ~7
    return np.frombuffer(buf, '<f8', count, pos), pos + 8 * count


# A topic's messages nearly always repeat the same frame_id and joint names, byte for byte: the
# bytes between the stamp and the end of `name[]` are remembered with what they decode to, and a
# message whose bytes there are equal (one memcmp) reuses the decoded names (a tuple, shared).
_LAYOUTS: list[tuple[bytes, str, tuple[str, ...], int]] = []


def _layout(raw, buf) -> tuple[str, tuple[str, ...], int]:
    for blob, frame_id, names, end in _LAYOUTS:
        if raw[12:12 + len(blob)] == blob:
            return frame_id, names, end
    header, start = _header(buf, 0)
    names_list, end = _strings(buf, start)
    _LAYOUTS.insert(0, (bytes(buf[8:end]), header.frame_id, tuple(names_list), end))
    del _LAYOUTS[16:]
    return header.frame_id, tuple(names_list), end


def _decoder(decode):
    """Turn every failure of a decoder on bad bytes into a `CdrError` naming the message type."""
    name = decode.__name__

    def wrapper(raw) -> object:
        try:
            return decode(raw)
        except CdrError as exc:
            raise CdrError(f'malformed {name} CDR: {exc}') from None
        except (struct.error, ValueError, UnicodeDecodeError, IndexError) as exc:
            raise CdrError(f'malformed {name} CDR ({len(raw)} bytes): {exc}') from None
    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = decode.__doc__
    return wrapper


@_decoder
def joint_state(raw: bytes) -> JointStateMsg:
    buf = memoryview(raw)[4:]
    msg = JointStateMsg()
    sec, nanosec = _TIME.unpack_from(buf, 0)
    frame_id, names, pos = _layout(raw, buf)
    msg.header = Header(Stamp(sec, nanosec), frame_id)
    msg.name = names
    msg.position, pos = _doubles(buf, pos)
    msg.velocity, pos = _doubles(buf, pos)
    msg.effort, pos = _doubles(buf, pos)
    return msg


def _vec(values) -> Vec:
    v = Vec()
    v.x, v.y, v.z = values[0], values[1], values[2]
    v.w = values[3] if len(values) > 3 else 0.0
    return v


@_decoder
def imu(raw: bytes) -> ImuMsg:
    buf = memoryview(raw)[4:]
    msg = ImuMsg()
    msg.header, pos = _header(buf, 0)
    pos = (pos + 7) & ~7
    msg.orientation = _vec(_F64x4.unpack_from(buf, pos))
    pos += 32 + 72
    msg.angular_velocity = _vec(_F64x3.unpack_from(buf, pos))
    pos += 24 + 72
    msg.linear_acceleration = _vec(_F64x3.unpack_from(buf, pos))
    return msg


FAST = {'sensor_msgs/msg/JointState': joint_state, 'sensor_msgs/msg/Imu': imu}


def little_endian_cdr(raw) -> bool:
    return len(raw) >= 4 and raw[0] == 0 and raw[1] == 1
