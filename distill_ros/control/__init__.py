"""Real-time control without ROS: the loop on absolute deadlines, inference backends, safety
(limits, rate limits, finite check, watchdog, e-stop) and the student controller's tick."""
from distill_ros.control.controller import POLICY, REPEAT, SAFE, StudentController, Tick, command_order
from distill_ros.control.inference import BACKENDS, Backend, BackendError, load_backend
from distill_ros.control.safety import SAFE_ACTIONS, EStop, SafetyFilter, Watchdog
from distill_ros.control.timing import LoopStats, RealtimeLoop, Ring, request_fifo

__all__ = ['BACKENDS', 'POLICY', 'REPEAT', 'SAFE', 'SAFE_ACTIONS', 'Backend', 'BackendError', 'EStop', 'LoopStats',
           'RealtimeLoop', 'Ring', 'SafetyFilter', 'StudentController', 'Tick', 'Watchdog', 'command_order',
           'load_backend', 'request_fifo']
