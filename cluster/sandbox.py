"""The tenant zone on one machine: run a command as a sandboxed process.

Everything a tenant supplied that executes (model files, parsers fed tenant files,
later plugins and tenant Ray heads) runs through ``Sandbox.start``. The one backend
today is bubblewrap: new user (uid 65534, no capabilities, no further user
namespaces), pid, ipc, uts, cgroup, mount and network namespaces; a read-only view of
only the interpreter, the venv, system libraries and the packages named; a private
``/tmp`` and ``/dev/shm``; one scratch directory; an environment built from an
allow-list. Limits: memory, CPU and process count through cgroups where the kernel
lets us (v1 controllers or v2), else rlimits; always RLIMIT_FSIZE, RLIMIT_NOFILE and
no core dumps; a deadline that kills the whole sandbox; scratch and cgroup removed by
the parent after any exit.

Same kernel: a kernel exploit escapes. A kernel-isolated backend (gVisor's ``runsc``,
or a locked-down pod on Kubernetes) fits behind the same ``Sandbox`` interface.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

INSTALL_HINT = "install bubblewrap: apt-get install bubblewrap (Debian/Ubuntu)"
SANDBOX_UID = 65534  # nobody
# what a sandboxed process may see of the host's environment (values are not secret)
PASSED_ENV = ("LANG", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES")
_CGROUP_ROOT = Path("/sys/fs/cgroup")


class SandboxUnavailable(RuntimeError):
    """No sandbox can be started here; the message names the fix."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed process (and all it starts) may use."""

    memory_mb: int = 2048
    cpus: float | None = 1.0
    pids: int = 128
    wall_s: float | None = None
    file_size_mb: int = 1024
    open_files: int = 1024
    tmp_mb: int = 256  # the private /tmp and /dev/shm, each


@dataclass(frozen=True)
class Spec:
    argv: Sequence[str]
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(default_factory=dict)
    read_only: Mapping[str, str] = field(default_factory=dict)  # host path -> sandbox path
    packages: Sequence[str] = ()  # importable packages exposed read-only (their source)
    network: bool = False
    pass_fds: Sequence[int] = ()
    stdin: int | IO[Any] | None = subprocess.DEVNULL
    stdout: int | IO[Any] | None = subprocess.PIPE
    stderr: int | IO[Any] | None = subprocess.PIPE


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes
    limit: str | None  # "memory" or "time" when a limit ended it


class Sandboxed:
    """A running sandboxed process; ``close()`` kills what is left and cleans up."""

    def __init__(
        self, process: subprocess.Popen[bytes], scratch: Path, cgroups: _Cgroups | None
    ) -> None:
        self.process = process
        self.scratch = scratch
        self._cgroups = cgroups
        self._timed_out = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self._cgroups is not None:
            self._cgroups.kill()

    def limit_hit(self) -> str | None:
        """Which limit ended it, when one did: 'memory' or 'time'."""
        if self._cgroups is not None and self._cgroups.oom_killed():
            return "memory"
        if self._timed_out:
            return "time"
        return None

    def at_memory_limit(self) -> bool:
        """Whether it has pressed against its memory cap (it may be thrashing there
        rather than killed yet)."""
        return self._cgroups is not None and self._cgroups.memory_capped()

    def communicate(self, data: bytes | None, timeout_s: float | None) -> Completed:
        try:
            out, err = self.process.communicate(data, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            self.kill()
            out, err = self.process.communicate()
        return Completed(self.process.returncode, out or b"", err or b"", self.limit_hit())

    def close(self) -> None:
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self._cgroups is not None:
            self._cgroups.remove()
        shutil.rmtree(self.scratch, ignore_errors=True)


class Sandbox(ABC):
    """Starts sandboxed processes; one implementation per isolation technology."""

    name: str

    @abstractmethod
    def unavailable(self) -> str | None:
        """Why no sandbox can be started here (with the fix), or None when it can."""

    @abstractmethod
    def start(self, spec: Spec) -> Sandboxed:
        """Start ``spec.argv`` sandboxed; raises SandboxUnavailable."""

    def run(self, spec: Spec, data: bytes | None = None) -> Completed:
        """Run to completion under ``spec.limits.wall_s``; always cleaned up."""
        running = self.start(spec)
        try:
            return running.communicate(data, spec.limits.wall_s)
        finally:
            running.close()


class Bubblewrap(Sandbox):
    name = "bubblewrap"

    def __init__(self, *, scratch_root: Path | None = None, use_cgroups: bool = True) -> None:
        self._scratch_root = scratch_root or Path(tempfile.gettempdir()) / "atrium-sandbox"
        self._use_cgroups = use_cgroups

    def unavailable(self) -> str | None:
        return _bwrap_unusable()

    def start(self, spec: Spec) -> Sandboxed:
        reason = self.unavailable()
        if reason is not None:
            raise SandboxUnavailable(reason)
        self._scratch_root.mkdir(mode=0o711, parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="s-", dir=self._scratch_root))
        cgroups = _Cgroups.create(spec.limits) if self._use_cgroups else None
        argv = _wrapper(spec.limits, cgroups) + _bwrap_argv(spec, scratch)
        try:
            process = subprocess.Popen(  # noqa: S603 - argv is ours; the sandbox holds the rest
                argv,
                stdin=spec.stdin,
                stdout=spec.stdout,
                stderr=spec.stderr,
                pass_fds=tuple(spec.pass_fds),
                start_new_session=True,
                env={"PATH": "/usr/bin:/bin"},
            )
        except OSError:
            if cgroups is not None:
                cgroups.remove()
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return Sandboxed(process, scratch, cgroups)


def default_sandbox() -> Sandbox:
    return Bubblewrap()


# --- bubblewrap's command line -------------------------------------------------------


def _bwrap_argv(spec: Spec, scratch: Path) -> list[str]:
    args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns"]
    args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", "--hostname", "tenant"]
    if spec.network:
        args.append("--share-net")
    args += _system_view()
    # the private /tmp first: what is bound below it (a venv under /tmp, say) stays visible
    tmp = str(spec.limits.tmp_mb * 1024 * 1024)
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--size", tmp, "--tmpfs", "/tmp"]  # noqa: S108 - its own
    args += ["--perms", "1777", "--size", tmp, "--tmpfs", "/dev/shm"]  # noqa: S108 - its own
    for host in _python_paths(spec.packages):
        args += ["--ro-bind", host, host]
    for host, inside in spec.read_only.items():
        args += ["--ro-bind", host, inside]
    args += ["--bind", str(scratch), "/scratch", "--chdir", "/scratch"]
    args += _gpu_devices()
    args.append("--clearenv")
    for name, value in _environment(spec).items():
        args += ["--setenv", name, value]
    return [*args, "--", *spec.argv]


def _environment(spec: Spec) -> dict[str, str]:
    threads = str(max(1, int(spec.limits.cpus or os.cpu_count() or 1)))
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/scratch",
        "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's own private /tmp
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    env.update(spec.env)
    return env


@functools.cache
def _system_view() -> tuple[str, ...]:
    """/usr and friends (merged-/usr links kept as links), a few files of /etc."""
    args: list[str] = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime"):
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


@functools.cache
def _interpreter_paths() -> tuple[str, ...]:
    """The Python install and the venv: read-only, at their own paths."""
    found = {sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent)}
    return tuple(sorted(p for p in found if not p.startswith("/usr/")))


def _python_paths(packages: Sequence[str]) -> list[str]:
    paths = set(_interpreter_paths())
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SandboxUnavailable(f"package {name} cannot be found to expose it")
        paths.update(spec.submodule_search_locations)
    # a path inside another bound path is already visible
    ordered = sorted(paths)
    return [p for p in ordered if not any(p.startswith(f"{q}/") for q in ordered if q != p)]


def _gpu_devices() -> list[str]:
    args: list[str] = []
    for device in sorted(Path("/dev").glob("nvidia*")):
        args += ["--dev-bind", str(device), str(device)]
    return args


_USABLE = False


def _bwrap_unusable() -> str | None:
    """Tried until it works once (so installing bubblewrap needs no restart)."""
    global _USABLE
    if _USABLE:
        return None
    if shutil.which("bwrap") is None:
        return f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}"
    trial = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--ro-bind"]
    trial += ["/usr", "/usr", *_system_view()[3:], "--", "/bin/true"]
    try:
        done = subprocess.run(trial, capture_output=True, timeout=20, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap cannot start a sandbox here: {exc}"
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()[:300]
        return f"bubblewrap cannot start a sandbox here ({why}); user namespaces must be allowed"
    _USABLE = True
    return None


# --- limits: a small shell joins the cgroups, prlimit sets rlimits, then bwrap -------


def _wrapper(limits: Limits, cgroups: _Cgroups | None) -> list[str]:
    procs = cgroups.procs_files() if cgroups is not None else []
    join = "".join(f"echo $$ > {shlex.quote(str(p))} || exit 125; " for p in procs)
    rlimits = [
        f"--fsize={limits.file_size_mb * 1024 * 1024}",
        f"--nofile={limits.open_files}",
        "--core=0",
    ]
    if cgroups is None or not cgroups.limits_memory:
        cap = limits.memory_mb * 1024 * 1024
        rlimits.append(f"--as={cap}")
    if (cgroups is None or not cgroups.limits_pids) and os.geteuid() != 0:
        rlimits.append(f"--nproc={limits.pids}")
    return ["/bin/sh", "-c", f'{join}exec "$@"', "atrium-sandbox", "prlimit", *rlimits, "--"]


class _Cgroups:
    """One cgroup per sandbox under this process's own: v1 controllers or v2."""

    def __init__(self, dirs: dict[str, Path], *, v2: bool) -> None:
        self._dirs = list(dirs.values())
        self._v2 = v2
        self.limits_memory = v2 or "memory" in dirs
        self.limits_pids = v2 or "pids" in dirs

    @classmethod
    def create(cls, limits: Limits) -> _Cgroups | None:
        own = _own_cgroups()
        name = f"atrium-{uuid.uuid4().hex[:12]}"
        if "" in own and (_CGROUP_ROOT / "cgroup.controllers").exists():
            return cls._create_v2(_CGROUP_ROOT / own[""].lstrip("/") / name, limits)
        made: dict[str, Path] = {
            controller: d
            for controller in ("memory", "cpu", "pids")
            if controller in own
            and (d := _make_v1(controller, own[controller], name, limits)) is not None
        }
        return cls(made, v2=False) if made else None

    @classmethod
    def _create_v2(cls, path: Path, limits: Limits) -> _Cgroups | None:
        try:
            path.mkdir()
            _write(path / "memory.max", limits.memory_mb * 1024 * 1024)
            _write(path / "memory.swap.max", 0, required=False)
            _write(path / "pids.max", limits.pids)
            if limits.cpus:
                _write(path / "cpu.max", f"{int(limits.cpus * 100_000)} 100000")
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None  # controllers not delegated to us: rlimits instead
        return cls({"": path}, v2=True)

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self._dirs]

    def oom_killed(self) -> bool:
        for d in self._dirs:
            events = d / ("memory.events" if self._v2 else "memory.oom_control")
            with contextlib.suppress(OSError):
                for line in events.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        return False

    def memory_capped(self) -> bool:
        for d in self._dirs:
            name = "memory.events" if self._v2 else "memory.failcnt"
            with contextlib.suppress(OSError, ValueError):
                text = (d / name).read_text()
                if not self._v2 and int(text.strip() or 0) > 0:
                    return True
                if self._v2 and any(
                    line.split()[0] in ("max", "oom_kill") and int(line.split()[1]) > 0
                    for line in text.splitlines()
                ):
                    return True
        return False

    def kill(self) -> None:
        for d in self._dirs:
            with contextlib.suppress(OSError):
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        for d in self._dirs:
            for _ in range(50):  # the killed processes leave the cgroup within moments
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill()
                    time.sleep(0.05)


def _own_cgroups() -> dict[str, str]:
    """controller -> this process's cgroup path ('' for the v2 hierarchy)."""
    own: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                own[controller] = path
    return own


def _make_v1(controller: str, own: str, name: str, limits: Limits) -> Path | None:
    path = _CGROUP_ROOT / controller / own.lstrip("/") / name
    try:
        path.mkdir()
        if controller == "memory":
            _write(path / "memory.limit_in_bytes", limits.memory_mb * 1024 * 1024)
            _write(path / "memory.memsw.limit_in_bytes", limits.memory_mb * 1024**2, required=False)
        elif controller == "pids":
            _write(path / "pids.max", limits.pids)
        elif limits.cpus:
            _write(path / "cpu.cfs_period_us", 100_000)
            _write(path / "cpu.cfs_quota_us", int(limits.cpus * 100_000))
    except OSError:
        with contextlib.suppress(OSError):
            path.rmdir()
        return None
    return path


def _write(path: Path, value: object, *, required: bool = True) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if required:
            raise
