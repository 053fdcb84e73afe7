"""Lightning callbacks, one concern a file, each listed in conf/callbacks/ (the run finds the
recorders it reads by type): the run's record (time, throughput, curves), resume state and the
step checkpoint for exact resume, and the memory measurement."""

from ftlab.callbacks.graceful_stop import GracefulStop, RunInterrupted
from ftlab.callbacks.resume_checkpoint import RESUME_FILE, ResumeCheckpoint
from ftlab.callbacks.resume_state import ResumeState
from ftlab.callbacks.run_recorder import RunRecorder

__all__ = ["RESUME_FILE", "GracefulStop", "ResumeCheckpoint", "RunInterrupted", "ResumeState", "RunRecorder"]
