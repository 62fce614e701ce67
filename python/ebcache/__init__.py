"""ebcache from Python (docs/python.md).

    ebcache.read_schedule(path) -> Schedule       cache schedule tables (docs/schedule.md)
    ebcache.read_recording(path) -> Recording     `ebcache record` files (docs/recording.md)
    ebcache.torch                                 apply_schedule / record for PyTorch DiTs (needs torch)
    ebcache.lib                                   ctypes bindings to libebcache.so
"""
from ebcache.recording import Recording, read_recording
from ebcache.schedule import Policy, Row, Schedule, ScheduleError, read_schedule

__version__ = "0.3.0"
__all__ = ["Policy", "Recording", "Row", "Schedule", "ScheduleError", "read_recording", "read_schedule"]
