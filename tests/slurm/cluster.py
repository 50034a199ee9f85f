"""A real single-node SLURM cluster on localhost, for tests and for trying hydra/launcher=slurm.

Debian's slurm-wlm and munge (installed with apt-get when missing, as root), run as a private
cluster: its own munge key and socket, slurm.conf, state directory and free ports, so that it
touches no cluster already on the machine. ``stop`` cancels its jobs and ends only the daemons
that ``start`` started.

    python -m tests.slurm.cluster start /tmp/my-cluster   # prints the SLURM_CONF to export
    python -m tests.slurm.cluster stop /tmp/my-cluster
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel", "sinfo")
NODE = "localhost"  # the node name is also what Lightning takes as MASTER_ADDR: it must resolve

SLURM_CONF = """\
ClusterName=scenemodel
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
SlurmUser={user}
SlurmdUser=root
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/slurmd
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


class ClusterError(RuntimeError):
    pass


def ensure_installed() -> None:
    """Install Debian's slurm-wlm and munge with apt-get when a binary is missing."""
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"{', '.join(missing)} not found: install {' '.join(PACKAGES)} (apt-get, as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], check=True, env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class LocalSlurmCluster:
    """slurmctld + slurmd + munged under ``root`` (a fresh directory when None)."""

    def __init__(self, root: Path | str | None = None, cpus: int | None = None) -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="scene_model-slurm-"))
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = self.root / "slurm.conf"
        self.pid_file = self.root / "daemons.pid"

    @property
    def env(self) -> dict[str, str]:
        """The environment of a client (and of the jobs it submits) of this cluster."""
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    # --- start / stop -------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> LocalSlurmCluster:
        ensure_installed()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munged wants every directory above its socket searchable
        for sub in ("ctld", "slurmd"):
            (self.root / sub).mkdir(exist_ok=True)
        key = self.root / "munge.key"
        if not key.exists():
            subprocess.run([_sbin("mungekey"), "--create", f"--keyfile={key}"], check=True)
            key.chmod(0o400)
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.conf.write_text(
            SLURM_CONF.format(
                root=self.root, node=NODE, cpus=self.cpus, memory_mb=int(memory_mb * 0.8),
                ctld_port=free_port(), slurmd_port=free_port(), user=os.environ.get("USER") or "root",
            )
        )
        self._spawn(
            "munged", _sbin("munged"), "--foreground", f"--socket={self.root}/munge.socket",
            f"--key-file={key}", f"--pid-file={self.root}/munged.pid", f"--log-file={self.root}/munged.log",
            f"--seed-file={self.root}/munged.seed",
        )
        self._wait(lambda: (self.root / "munge.socket").exists(), timeout, "munged did not create its socket")
        self._spawn("slurmctld", _sbin("slurmctld"), "-D", "-f", str(self.conf))
        self._spawn("slurmd", _sbin("slurmd"), "-D", "-f", str(self.conf), "-N", NODE)
        self._wait(self.idle, timeout, "the node did not come up idle")
        return self

    def _spawn(self, name: str, *command: str) -> None:
        log = open(self.root / f"{name}.out", "ab")  # the daemon keeps it open
        proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with self.pid_file.open("a") as pids:
            pids.write(f"{name} {proc.pid}\n")

    def _wait(self, ready, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise ClusterError(f"{message} within {timeout:.0f} s; logs: {self.logs()}")
            time.sleep(0.5)

    def idle(self) -> bool:
        result = self.run("sinfo", "--noheader", "--format=%T", check=False)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def stop(self, timeout: float = 60) -> None:
        """Cancel this cluster's jobs, then end the daemons that ``start`` started (and only those)."""
        if not self.pid_file.exists():
            return
        if self.conf.exists():
            self.run("scancel", "--user", str(os.geteuid()), check=False)
            deadline = time.monotonic() + timeout
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(1)
        daemons = [line.split() for line in self.pid_file.read_text().splitlines() if line.strip()]
        for _name, pid in reversed(daemons):  # slurmd, slurmctld, then munged
            _terminate(int(pid), timeout=15)
        self.pid_file.unlink()

    def job_state(self, job_id: str) -> str:
        """PENDING, RUNNING, COMPLETING, COMPLETED, ... ('' once the controller forgot the job)."""
        result = self.run("scontrol", "show", "job", job_id, check=False)
        match = re.search(r"JobState=(\w+)", result.stdout)
        return match.group(1) if match else ""

    def release(self, job_id: str) -> None:
        """Make a pending job eligible now (Slurm holds a requeued job for about two minutes)."""
        self.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")

    def jobs(self) -> list[str]:
        result = self.run("squeue", "--noheader", "--format=%i", check=False)
        return result.stdout.split() if result.returncode == 0 else []

    def logs(self) -> str:
        return ", ".join(str(p) for p in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out")))

    def __enter__(self) -> LocalSlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it
        except ChildProcessError:  # started by another process (the command-line `start`)
            done = pid if not Path(f"/proc/{pid}").exists() else 0
        if done:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m tests.slurm.cluster")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("root", type=Path, help="directory of the cluster's configuration, state and logs")
    args = parser.parse_args(argv)
    cluster = LocalSlurmCluster(args.root)
    if args.action == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
