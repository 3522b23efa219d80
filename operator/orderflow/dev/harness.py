"""The controllers as processes: one way to start, watch and stop them, for the tests, the demo and
the benchmark.

Each controller runs as ``python -m orderflow.cli run <which>`` in a process of its own, as it runs
in its Pod: the two meet only in the API server, so what holds here holds between two Pods. The
tests, the demo and the benchmark each had a copy of this, and the copies drifted (the benchmark
passed each controller's own option to both); so there is one, and it decides, once:

- the interpreter is the one running this code (``sys.executable``): the orderflow installed next
  to it runs, from a checkout or from a wheel, with no file of the checkout read;
- each process leads a session of its own: Ctrl-C in a terminal is its caller's to handle, and a
  stop signals the whole group;
- started means Kopf's health endpoint answers (``--liveness`` on a free port of 127.0.0.1). Kopf
  serves it once its start-up has run, when its watches begin; it makes no API request, so a
  benchmark that counts the API server's requests sees none of it, and a controller whose RBAC is
  broken still comes up, to show its refusal in its log;
- the output goes to a log file, whose tail is in every failure report;
- stopped is what Kubernetes does to a Pod: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Self

from orderflow.dev.cluster.controlplane import free_port

CONTROLLERS = ("order", "fulfillment")
START_TIMEOUT = 60.0
"""Seconds from the process start to a healthy controller: an import and Kopf's start-up, on a busy
machine; longer means it hangs, and the report says so rather than a test timing out later."""
GRACE_SECONDS = 20.0
"""Between SIGTERM and SIGKILL. A controller stops in about a second; under a benchmark's load,
with its queues full, it may take longer, and a graceful stop is what is being run."""
TAIL_CHARS = 6000


class ControllerError(RuntimeError):
    """A controller did not come up: it exited, or served no health endpoint in time. The message
    carries the tail of its log, which says why."""


class Memory(NamedTuple):
    """Resident memory, as the kernel counts it (/proc/<pid>/status)."""

    now_mib: float  # VmRSS
    peak_mib: float  # VmHWM: the high-water mark since the process started


class ControllerProcess:
    """``orderflow run <which> <args>`` in its own process, with its output kept in ``log``.

    ``args`` are the command's own options (``--namespace``, ``--ack-timeout`` ...), passed as
    given: the command, not this class, knows which controller takes which, and a wrong one ends
    the process at once, which ``start`` reports with the usage message.
    """

    def __init__(
        self, which: str, args: Sequence[str] = (), *, log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        if which not in CONTROLLERS:
            raise ValueError(f"no {which!r} controller: one of {', '.join(CONTROLLERS)}")
        self.which = which
        self.args = list(args)
        self.env = dict(os.environ if env is None else env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = 0

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.alive else "not running"
        return f"<{self.which} controller, {state}, log {self.log}>"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"the {self.which} controller was never started")
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start it and return once it serves its health endpoint; raise ControllerError if it
        exits first or does not serve it within ``timeout`` seconds (then it is killed)."""
        if self.alive:
            raise RuntimeError(f"the {self.which} controller is running already (pid {self.pid})")
        self.health_port = free_port()
        argv = [sys.executable, "-m", "orderflow.cli", "run", self.which, *self.args, "--liveness", self.health_url]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:  # appended: a restart's output follows the run before it
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.proc.poll() is not None:
                raise ControllerError(
                    f"the {self.which} controller exited ({self.proc.returncode}) before it was healthy; "
                    f"its log {self.log} ends:\n{self.output()}"
                )
            if time.monotonic() >= deadline:
                self.kill()
                raise ControllerError(
                    f"the {self.which} controller did not serve {self.health_url} within {timeout}s; "
                    f"its log {self.log} ends:\n{self.output()}"
                )
            time.sleep(0.1)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def terminate(self) -> None:
        """SIGTERM and return: to stop several at once (``stop`` then waits for each)."""
        self._signal(signal.SIGTERM)

    def stop(self, grace: float = GRACE_SECONDS) -> int | None:
        """SIGTERM, as Kubernetes stops a Pod, and SIGKILL if it has not exited ``grace`` seconds
        later. Returns its exit code (0 after a clean shutdown), None if it never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crashed Pod or a node gone."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self, grace: float = GRACE_SECONDS) -> Self:
        """Stop it gracefully and start it again with the same options, as a rolled Pod."""
        self.stop(grace)
        return self.start()

    def _signal(self, signum: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # exited between the check and the signal
                os.killpg(self.proc.pid, signum)

    def output(self, chars: int = TAIL_CHARS) -> str:
        """The end of its log: what a failure report shows."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    # What the benchmark reads of a running controller (Linux: /proc).

    def cpu_seconds(self) -> float:
        """User and system CPU time used so far."""
        return cpu_seconds(self.pid)

    def memory(self) -> Memory:
        return memory(self.pid)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (/proc/<pid>/stat): any process the
    benchmark measures, a controller, the API server, etcd or the peer's server."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> Memory:
    status = Path(f"/proc/{pid}/status").read_text()

    def kib(field: str) -> int:
        found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no {field} in /proc/{pid}/status")
        return int(found[1])

    return Memory(kib("VmRSS") / 1024, kib("VmHWM") / 1024)


def stop(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds: for the processes the benchmark starts
    beside the controllers (the peer's server and worker)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Controllers:
    """The controllers one caller started, each with its own log in ``log_dir``, stopped together.

    A second start of the same controller (a restart after a kill, say) gets a log of its own,
    ``order.log``, ``order-2.log`` ...: each run's story stays whole.
    """

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[ControllerProcess] = []

    def start(self, which: str, *args: str, env: Mapping[str, str] | None = None) -> ControllerProcess:
        """Start ``orderflow run <which> <args>``, with ``env`` instead of the group's if given (a
        controller logged in as someone else)."""
        runs = sum(1 for process in self.started if process.which == which)
        log = self.log_dir / (f"{which}.log" if runs == 0 else f"{which}-{runs + 1}.log")
        process = ControllerProcess(which, args, log=log, env=self.env if env is None else env)
        self.started.append(process)
        return process.start()

    def stop_all(self, grace: float = GRACE_SECONDS) -> None:
        """SIGTERM to all at once, then SIGKILL to any still running ``grace`` seconds later: one
        grace period for all of them, not one each."""
        for process in self.started:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in self.started:
            process.stop(max(0.0, deadline - time.monotonic()))
