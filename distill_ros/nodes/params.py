"""Parameter declaration with descriptions, ranges and choices, validated at start and on change."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterValueException, ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter


class ParameterError(ValueError):
    """A parameter value was refused; the message names the parameter and what was expected."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    choices: Sequence[str] | None = None
    low: float | None = None
    high: float | None = None
    read_only: bool = True

    def check(self, value: Any) -> str | None:
        """The reason `value` is refused, or None when it is acceptable."""
        if self.choices is not None and value not in self.choices:
            return f'parameter {self.name!r} is {value!r}; expected one of {list(self.choices)}'
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.low is not None and value < self.low:
                return f'parameter {self.name!r} is {value}; expected >= {self.low}'
            if self.high is not None and value > self.high:
                return f'parameter {self.name!r} is {value}; expected <= {self.high}'
        return None


def declare(node: Node, params: Sequence[Param]) -> dict[str, Any]:
    """Declare `params` on `node`, check the values it was started with, and refuse bad changes.

    Returns the values by name. A refused start value raises `ParameterError` naming the
    parameter, which the node's `main` reports before exiting with a non-zero status.
    """
    by_name = {p.name: p for p in params}
    values: dict[str, Any] = {}
    for p in params:
        descriptor = ParameterDescriptor(description=p.description, read_only=p.read_only)
        if p.choices is not None:
            descriptor.additional_constraints = f'one of {list(p.choices)}'
        if p.low is not None and p.high is not None and not isinstance(p.default, (bool, str)):
            if isinstance(p.default, int):
                descriptor.integer_range = [IntegerRange(from_value=int(p.low), to_value=int(p.high), step=0)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(p.low),
                                                                      to_value=float(p.high), step=0.0)]
        try:
            value = node.declare_parameter(p.name, p.default, descriptor).value
        except (InvalidParameterValueException, ParameterException, TypeError) as exc:
            raise ParameterError(f'parameter {p.name!r}: {exc} ({p.description})') from exc
        if type(value) is not type(p.default) and not (isinstance(p.default, float) and isinstance(value, int)):
            raise ParameterError(f'parameter {p.name!r} is {value!r} of type {type(value).__name__}; '
                                 f'expected {type(p.default).__name__} ({p.description})')
        reason = p.check(value)
        if reason:
            raise ParameterError(f'{reason} ({p.description})')
        values[p.name] = float(value) if isinstance(p.default, float) else value

    def on_set(changes: list[Parameter]) -> SetParametersResult:
        for change in changes:
            p = by_name.get(change.name)
            reason = p.check(change.value) if p else None
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return values
