"""Run one untrusted program against its tests in its own process (the launcher side).

:class:`Sandbox` starts the standard-library runner :mod:`evaluate.harness` in a fresh
interpreter (``python -u -S -s -B -c BOOTSTRAP``: no site-packages), sends it the runner's code
(compiled once here) and the job over stdin, and reads per-test records from a private pipe
(the harness docstring describes the channel and its threat model). Of a test ``assert EXPR ==
LITERAL`` only ``EXPR`` is sent: this process compares the value with the literal
(:mod:`evaluate.verdict`). The parent enforces the wall-clock limit and kills the whole process
tree; every limit is in :class:`Limits`.

Kind ``bwrap`` (default) isolates, with bubblewrap:

- network: a new, empty network namespace (loopback only, nothing listening);
- processes: new PID, IPC and UTS namespaces (no other process is visible or can be signalled;
  everything the runner started dies with the namespace), a new session (no terminal
  injection), ``--die-with-parent``;
- file system: only ``/usr`` (with the ``/bin``, ``/lib*`` links), the ``/etc`` files of the
  dynamic linker and the interpreter's install prefix, all read-only; fresh ``/proc`` and
  ``/dev``; the work dir ``/tmp`` is a private, size-capped tmpfs that vanishes afterwards. The
  project, the data, home folders and the host ``/tmp`` are not visible;
- privileges: no new privileges; as non-root, a user namespace without capabilities; as root,
  the runner switches to a unique unprivileged uid before the program runs (which also makes
  the process-count limit per program).

Both kinds apply, before the program runs: CPU seconds, address space (~2 GiB), file size, open
files, process count (threads count too), no core dumps; stdout and stderr are drained and
capped; the wall-clock timeout kills the process group.

Not isolated: CPU and memory bandwidth (no cgroups: a program may use ``max_processes`` times
the address-space limit at worst), the kernel attack surface (no seccomp filter), and read
access to the world-readable files under ``/usr`` and the interpreter prefix.

Kind ``process`` (``--sandbox process``) has only the resource limits, the uid switch as root,
parent-death kill and no-new-privileges: the program sees the whole file system, the network
and other processes with the launcher's (or the unique uid's) rights, and a child that calls
``setsid`` escapes the group kill. It is not a security boundary.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import marshal
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from artifacts.errors import InputError
from evaluate import harness
from evaluate.verdict import Check, CheckKind, Ending, ErrorType, ExecutionResult, Verdict, decide, split_test

HARNESS_SOURCE = Path(harness.__file__).read_text()
# What ``python -c`` runs: the runner's code object, compiled once by the parent (compiling it in
# every child cost ~4 ms of a ~20 ms launch), read from stdin and run as __main__. (The comment
# is what tests look for in a runner's command line.)
BOOTSTRAP = (
    "# pva-baseline test runner (evaluate/harness.py): executes INSIDE the sandbox\n"
    "import sys, marshal\n"
    "stdin = sys.stdin.buffer\n"
    "exec(marshal.loads(stdin.read(int(stdin.readline()))))\n"
)
SANDBOX_WORKDIR = "/tmp"  # inside bwrap
# Unique uids for programs when the launcher is root: base + (launcher pid, counter) blocks.
RUN_AS_BASE = 1_900_000_000
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap), "
    "or pass --sandbox process to run with resource limits only (no isolation)"
)
# Files under /etc the dynamic linker and time functions read; nothing else of /etc is shown.
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
PROGRAM_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",  # set and dict-of-str orders, hence outputs, repeat run to run
    "PYTHONIOENCODING": "utf-8",
}
DRAIN_GRACE_S = 0.5  # after the runner exits, how long stray children may hold the pipes
STREAMS = ("stdout", "stderr", "results")


class SandboxKind(str, Enum):
    BWRAP = "bwrap"
    PROCESS = "process"


DEFAULT_SANDBOX = SandboxKind.BWRAP  # the one place the default is spelled (evaluate --sandbox, run's check)


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): results would be meaningless."""


@dataclass(frozen=True)
class Limits:
    """Every limit on one program, in one place."""

    timeout_s: float = 10.0  # wall-clock seconds per program (all its tests), enforced by the parent
    address_space_bytes: int = 2 << 30  # RLIMIT_AS per process
    file_size_bytes: int = 16 << 20  # RLIMIT_FSIZE: the largest file the program may write
    max_processes: int = 8  # processes and threads the program may add (RLIMIT_NPROC)
    open_files: int = 256  # RLIMIT_NOFILE
    workdir_bytes: int = 64 << 20  # size of the private tmpfs work dir (bwrap only)
    output_bytes: int = 16 << 10  # stdout and stderr bytes kept, each (the rest is drained and dropped)
    results_bytes: int = 1 << 20  # result-channel bytes kept

    @property
    def cpu_s(self) -> int:
        """RLIMIT_CPU: the wall limit rounded up, plus one second (the wall limit fires first)."""
        return math.ceil(self.timeout_s) + 1


@dataclass(frozen=True)
class Program:
    """One program and its tests, and the rules that decide them.

    Under ``Verdict.ROBUST`` ``setup_code`` runs between the code and the tests, and tests of the
    form ``assert EXPR == LITERAL`` are decided in this process. Under ``Verdict.LEGACY`` (the
    earlier tool's semantics) the code runs in a plain dict, ``setup_code`` is ignored, every
    test runs as a statement and the first failure ends the run.
    """

    code: str
    tests: tuple[str, ...]
    setup_code: str = ""
    verdict: Verdict = Verdict.ROBUST

    @property
    def checks(self) -> tuple[Check, ...]:
        """How each test is decided."""
        if self.verdict is Verdict.LEGACY:
            return tuple(Check(CheckKind.STATEMENT, test) for test in self.tests)
        return tuple(split_test(test) for test in self.tests)


class Sandbox:
    """Runs programs in bubblewrap (or, unisolated, as plain processes). Thread-safe."""

    def __init__(self, kind: SandboxKind | str = DEFAULT_SANDBOX, *, limits: Limits = Limits()) -> None:
        """
        Args:
            kind: ``bwrap`` (isolated) or ``process`` (resource limits only).
            limits: the limits of every program.

        Raises:
            InputError: ``bwrap`` asked for but not installed.
        """
        self.kind = SandboxKind(kind)
        self.limits = limits
        self.python = os.path.realpath(sys.executable)
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._bwrap = shutil.which("bwrap") if self.kind is SandboxKind.BWRAP else None
        if self.kind is SandboxKind.BWRAP and self._bwrap is None:
            raise InputError(f"bwrap: not found on PATH; {INSTALL_HINT}")
        self._bwrap_prefix = self._bwrap_args() if self._bwrap else []
        self._harness_code = marshal.dumps(compile(HARNESS_SOURCE, "<harness>", "exec", dont_inherit=True))
        # As root, programs run under a unique unprivileged uid; without bwrap that uid must be
        # able to read the interpreter's files where they are.
        self._switch_uid = os.geteuid() == 0 and (self._bwrap is not None or _world_readable(self.python))

    def check(self) -> None:
        """Run a known-good and a known-bad program; :class:`InputError` (saying what to do) unless both are right."""
        hint = INSTALL_HINT if self.kind is SandboxKind.BWRAP else "check that the interpreter runs"
        try:
            good = self.run(Program("def f():\n    return 1", ("assert f() == 1",)))
            bad = self.run(Program("def f():\n    return 2", ("assert f() == 1",)))
        except SandboxError as exc:
            raise InputError(f"{self.kind.value} sandbox cannot run here ({_one_line(str(exc))}); {hint}") from exc
        if not good.passed or bad.error_type is not ErrorType.ASSERTION_FAILED:
            detail = good.error_message or bad.error_message or ""
            raise InputError(
                f"{self.kind.value} sandbox self-check failed ({_one_line(detail + ' ' + good.output)}); {hint}"
            )

    def describe(self) -> dict:
        """What the metadata records about the sandbox."""
        unprivileged = self._switch_uid or os.geteuid() != 0
        warnings = []
        if not unprivileged:
            warnings.append(f"warning: running as root and {self.python} is not readable by other users: programs "
                            "run as root and the process-count limit is not enforced")
        return {
            "kind": self.kind.value,
            "isolated": self.kind is SandboxKind.BWRAP,
            "bwrap_version": bwrap_version(self._bwrap) if self._bwrap else None,
            "python": self.python,
            "python_version": sys.version.split()[0],
            "limits": self._limits(),
            # A returned value larger or deeper than this fails its test (evaluate/harness.py).
            "value_limits": {"max_bytes": harness.MAX_VALUE_BYTES, "max_depth": harness.MAX_VALUE_DEPTH},
            "unprivileged_uid": unprivileged,
            "max_processes_enforced": unprivileged,  # RLIMIT_NPROC does not bind uid 0
            "warnings": warnings,
        }

    def run(self, program: Program) -> ExecutionResult:
        """Run ``program`` and its tests; never raises for anything the program does.

        Code that does not compile is not started: this interpreter compiles it as the runner
        would (same flags) and reports the runner's result.

        Raises:
            SandboxError: the runner did not start (a broken sandbox, not a bad program).
        """
        checks = program.checks
        message = compile_failure(program.code)
        if message is not None:
            records = {"ready": True, "stage": (harness.STAGE_CODE, harness.SYNTAX_ERROR, message), "tests": {},
                       "values": {}, "done": len(checks)}
            return decide(program.tests, checks, records, Ending(timed_out=False, exit_status=0))
        nonce = secrets.token_hex(16)
        read_fd, write_fd = os.pipe()
        workdir = SANDBOX_WORKDIR if self._bwrap else tempfile.mkdtemp(prefix="pva-eval-")
        job = marshal.dumps(self._job(program, checks, nonce, write_fd, workdir))
        start = time.monotonic()
        try:
            proc = self._launch(write_fd, workdir)
            try:
                with contextlib.suppress(BrokenPipeError):  # the runner died at start: "did not start" below
                    proc.stdin.write(b"%d\n" % len(self._harness_code) + self._harness_code + job)  # type: ignore
                    proc.stdin.close()  # type: ignore[union-attr]
                kept, total, timed_out, exit_status = self._collect(proc, read_fd, start)
            finally:
                _kill_group(proc)
        finally:
            os.close(read_fd)
            if not self._bwrap:
                shutil.rmtree(workdir, ignore_errors=True)
        wall = time.monotonic() - start
        records = harness.parse_records(bytes(kept["results"]), nonce)
        output = _output_text(kept, total)
        if not records["ready"] and not timed_out:
            raise SandboxError(f"the test runner did not start (exit status {exit_status}): {output[-500:]}")
        ending = Ending(timed_out, exit_status, output, wall, self.limits.timeout_s, self.limits.cpu_s,
                        self.limits.address_space_bytes >> 20)
        return decide(program.tests, checks, records, ending)

    def _limits(self) -> dict:
        return {**asdict(self.limits), "cpu_s": self.limits.cpu_s}

    def _job(self, program: Program, checks: tuple[Check, ...], nonce: str, results_fd: int, workdir: str) -> dict:
        """The runner's job (see the harness docstring): the tests' expressions, never their literals."""
        legacy = program.verdict is Verdict.LEGACY
        return {
            "nonce": nonce,
            "results_fd": results_fd,
            "code": program.code,
            "setup_code": "" if legacy else program.setup_code,
            "checks": [[check.kind.value, check.source] for check in checks],  # never the literals
            "legacy": legacy,
            "limits": self._limits(),
            "workdir": workdir,
            "run_as": self._run_as() if self._switch_uid else None,
            "process_mode": self.kind is SandboxKind.PROCESS,
        }

    def _run_as(self) -> list[int]:
        with self._lock:
            n = next(self._counter)
        uid = RUN_AS_BASE + ((os.getpid() & 0xFFF) << 12) + (n & 0xFFF)
        return [uid, uid]

    def _launch(self, write_fd: int, workdir: str) -> subprocess.Popen:
        """Start the runner holding the only write end of the result pipe (closed here either way)."""
        try:
            return subprocess.Popen(
                [*self._bwrap_prefix, self.python, "-u", "-S", "-s", "-B", "-c", BOOTSTRAP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                start_new_session=True,  # one process group to kill
                env=PROGRAM_ENV,
                cwd=None if self._bwrap else workdir,
            )
        finally:
            os.close(write_fd)

    def _bwrap_args(self) -> list[str]:
        args = [self._bwrap]  # type: ignore[list-item]
        if os.geteuid() == 0:
            # As root, bwrap would map uid 0 into a user namespace where the runner could not
            # switch uid; without one it keeps only the capabilities needed to switch.
            args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
            args += ["--cap-drop", "ALL"]
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_CHOWN"]
        else:
            args += ["--unshare-all"]
        args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
        args += ["--ro-bind", "/usr", "/usr"]
        for path in ROOT_LINKS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for path in ETC_FILES:
            args += ["--ro-bind-try", path, path]
        # The interpreter's install prefix (pyenv, conda, /opt ...): bin/, lib/ with the stdlib.
        prefix = os.path.dirname(os.path.dirname(self.python))
        if not (prefix + "/").startswith("/usr/"):
            # bwrap copies the modes of the source's parents (/root is 0700): open them up so
            # the unprivileged uid can reach the standard library.
            for parent in reversed(Path(prefix).parents[:-1]):
                args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", prefix, prefix]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--perms", "1777", "--size", str(self.limits.workdir_bytes), "--tmpfs", SANDBOX_WORKDIR]
        args += ["--chdir", SANDBOX_WORKDIR, "--setenv", "HOME", SANDBOX_WORKDIR, "--setenv", "TMPDIR", SANDBOX_WORKDIR]
        return [*args, "--"]

    def _collect(self, proc: subprocess.Popen, read_fd: int,
                 start: float) -> tuple[dict[str, bytearray], dict[str, int], bool, int | None]:
        """Drain stdout, stderr and the result pipe until EOF, the deadline, or exit + grace.

        Returns:
            The bytes kept of each stream (capped), the bytes read of each, whether the wall-clock
            limit ended the run, and the exit status.
        """
        names = dict(zip((proc.stdout.fileno(), proc.stderr.fileno(), read_fd), STREAMS))  # type: ignore[union-attr]
        caps = dict(zip(STREAMS, (self.limits.output_bytes, self.limits.output_bytes, self.limits.results_bytes)))
        kept = {name: bytearray() for name in STREAMS}
        total = dict.fromkeys(STREAMS, 0)
        deadline = start + self.limits.timeout_s
        exit_status = exited_at = None
        timed_out = False
        with selectors.DefaultSelector() as selector:
            for fd in names:
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                now = time.monotonic()
                if exit_status is None:
                    exit_status = proc.poll()
                    exited_at = now if exit_status is not None else None
                if exited_at is not None and now - exited_at > DRAIN_GRACE_S:
                    break  # the runner is gone; a stray child keeps a pipe open
                if now >= deadline:
                    timed_out = exit_status is None
                    break
                wait = min(deadline - now, 0.05 if exit_status is None else DRAIN_GRACE_S)
                for key, _ in selector.select(timeout=wait):
                    try:
                        chunk = os.read(key.fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            raise
                        chunk = b""
                    if not chunk:
                        selector.unregister(key.fd)
                    name = names[key.fd]
                    kept[name] += chunk[: max(0, caps[name] - len(kept[name]))]
                    total[name] += len(chunk)
        if exit_status is None and not timed_out:
            # Every pipe closed: the runner is exiting, or closed its pipes and runs on.
            try:
                exit_status = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        return kept, total, timed_out, exit_status


def bwrap_version(path: str | None = None) -> str | None:
    """``bubblewrap 0.8.0`` -> ``"0.8.0"``; ``None`` when bwrap is missing."""
    path = path or shutil.which("bwrap")
    if not path:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split()[-1] if out.strip() else None


def compile_failure(code: str) -> str | None:
    """The runner's message for ``code`` that does not compile (its first stage), else None.

    Compiling runs nothing of the program (extraction already parses completions here).
    """
    try:
        compile(code, "<solution>", "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        text = str(exc)
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return message[: harness.MAX_MESSAGE_CHARS].encode("utf-8", "replace").decode("utf-8", "replace")
    return None


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _world_readable(path: str) -> bool:
    """Every folder above the interpreter's prefix lets other users through."""
    prefix = Path(path).parent.parent
    return all(os.stat(p).st_mode & 0o001 for p in [prefix, *prefix.parents])


def _output_text(kept: dict[str, bytearray], total: dict[str, int]) -> str:
    """stdout and stderr as text for the result, with how much was dropped."""
    parts = []
    for name in ("stdout", "stderr"):
        if kept[name]:
            dropped = total[name] - len(kept[name])
            tail = f"\n[... {dropped} more bytes dropped]" if dropped else ""
            parts.append(f"--- {name} ---\n{kept[name].decode('utf-8', 'replace')}{tail}")
    return "\n".join(parts)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the launched process group (bwrap then takes its namespace down) and reap."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None and not stream.closed:
            stream.close()
