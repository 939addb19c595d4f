"""The local training runner: the trainer entrypoint in a subprocess, as Vertex AI would run it.

Same arguments, same ``AIP_*`` environment. The child's log lines stream into the task log;
a failure raises with the child's last lines, and ``cancel`` ends the child's process group.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess

from airflow_ml_provider.core.training.job import TrainingJob
from airflow_ml_provider.exceptions import TrainingJobError

log = logging.getLogger(__name__)


class LocalTrainingRunner:
    """Runs a TrainingJob as ``python -m airflow_ml_provider.core.training.trainer`` and waits for it."""

    #: Nothing to wait for outside the worker: the trainer is the worker's own child.
    supports_deferral = False

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def reattach(self, job: TrainingJob) -> bool:
        """``TrainingRunner``: a local job dies with its task, so there is never one to reattach to."""
        return False

    def run(self, job: TrainingJob) -> None:
        """Run to completion, streaming output; raise TrainingJobError on a non-zero exit."""
        log.info("Starting local training job %s %s: %s", job.model_name, job.version, " ".join(job.command()[1:]))
        tail: collections.deque[str] = collections.deque(maxlen=15)
        self._proc = subprocess.Popen(
            job.command(),
            env={**os.environ, **job.env(), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so cancel() can end the trainer and anything it started
        )
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip()
            tail.append(line)
            log.info("[trainer] %s", line)
        code = self._proc.wait()
        self._proc = None
        if code != 0:
            detail = "\n".join(tail)
            reason = next((ln.split("error: ", 1)[1] for ln in reversed(tail) if "trainer: error: " in ln), None)
            raise TrainingJobError(
                f"training job {job.model_name} {job.version} failed (exit code {code}): "
                f"{reason or 'see the log lines below'}\n{detail if not reason else ''}".rstrip()
            )

    def cancel(self) -> None:
        """End the running trainer (called from the operator's on_kill)."""
        if self._proc and self._proc.poll() is None:
            log.warning("Cancelling local training job (pid %d)", self._proc.pid)
            os.killpg(self._proc.pid, signal.SIGTERM)
