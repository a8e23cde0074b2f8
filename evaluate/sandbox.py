"""Run one untrusted program against its tests in its own process (the launcher side).

:class:`Sandbox` starts the standard-library test runner :mod:`evaluate.harness` in a fresh
interpreter (``python -u -S -s -B -c BOOTSTRAP``: no site-packages, standard library only),
sends it the runner's code (compiled once here) and the job over stdin and reads per-test results from a private pipe (see the harness docstring for
the channel and its threat model). Tests of the form ``assert EXPR == LITERAL`` are split
(:mod:`evaluate.checks`): only ``EXPR`` is sent, and this process compares the value the
runner returns with the literal (:mod:`evaluate.verdict`), so the verdict of those tests is
decided outside the sandbox. The parent enforces the wall-clock limit and kills the whole
process tree; all limits live in :class:`Limits`.

Kind ``bwrap`` (default) isolates, via bubblewrap:

- network: a new, empty network namespace (loopback only, nothing listening);
- processes: a new PID namespace (no other process is visible or can be signalled; when the
  runner exits or is killed, everything it started dies with the namespace), a new session
  (no terminal injection), IPC and UTS namespaces; ``--die-with-parent``;
- file system: only ``/usr`` (with the ``/bin``, ``/lib*`` links), a few ``/etc`` files for
  the dynamic linker and the interpreter's install prefix, all read-only; fresh ``/proc`` and
  ``/dev``; the work dir ``/tmp`` is a private, size-capped tmpfs that vanishes afterwards.
  The project, the data, home folders and the host ``/tmp`` are not visible;
- privileges: no new privileges; as non-root, a user namespace without capabilities; when
  the launcher runs as root, the runner switches to a unique unprivileged uid before the
  program runs (this also makes the process-count limit per program).

Both kinds apply, before the program runs: CPU seconds, address space (~2 GiB), file size,
open files, process count (threads count too), no core dumps; stdout and stderr are drained
and capped; the wall-clock timeout kills the process group.

Not isolated: CPU and memory bandwidth (no cgroups: a program may use ``max_processes``
times the address-space limit at worst), the kernel attack surface (no seccomp filter), and
read access to the world-readable files under ``/usr`` and the interpreter prefix.

Kind ``process`` (``--sandbox process``) has only the resource limits, the uid switch when
root, parent-death kill and no-new-privileges: the program sees the whole file system, the
network and other processes with the launcher's (or the unique uid's) rights, and a child
that calls ``setsid`` escapes the group kill. It is not a security boundary.
"""

from __future__ import annotations

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
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from artifacts.errors import InputError
from evaluate import harness
from evaluate.checks import Check, CheckKind, split_tests
from evaluate.outcomes import ErrorType, ExecutionResult, Verdict
from evaluate.verdict import Ending, decide

HARNESS_SOURCE = Path(harness.__file__).read_text()
# What ``python -c`` runs: read the runner's compiled code from stdin and run it as __main__.
# Compiling the runner's source in every child cost ~4 ms of each ~20 ms launch; the parent
# compiles it once instead. (The comment is what tests look for in a runner's command line.)
BOOTSTRAP = (
    "# pva-baseline test runner (evaluate/harness.py): executes INSIDE the sandbox\n"
    "import sys, marshal\n"
    "stdin = sys.stdin.buffer\n"
    "exec(marshal.loads(stdin.read(int(stdin.readline()))))\n"
)
# Run by the programs' interpreter when it is not this one: its own compiled runner.
_COMPILE_HARNESS = "import sys, marshal; sys.stdout.buffer.write(marshal.dumps(compile(sys.stdin.read(), '<harness>', 'exec')))"
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


class SandboxKind(str, Enum):
    BWRAP = "bwrap"
    PROCESS = "process"


DEFAULT_SANDBOX = SandboxKind.BWRAP  # the one place the default is spelled (evaluate --sandbox, run's check)


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): results would be meaningless."""


@dataclass(frozen=True)
class Limits:
    """Every limit on one program, in one place.

    Attributes:
        timeout_s: wall-clock seconds per program (all its tests), enforced by the parent.
        address_space_bytes: RLIMIT_AS per process.
        file_size_bytes: RLIMIT_FSIZE (largest file the program may write).
        max_processes: processes and threads the program may add (RLIMIT_NPROC).
        open_files: RLIMIT_NOFILE.
        workdir_bytes: size of the private tmpfs work dir (bwrap only).
        output_bytes: stdout and stderr bytes kept, each (the rest is drained and dropped).
        results_bytes: result-channel bytes kept.
    """

    timeout_s: float = 10.0
    address_space_bytes: int = 2 << 30
    file_size_bytes: int = 16 << 20
    max_processes: int = 8
    open_files: int = 256
    workdir_bytes: int = 64 << 20
    output_bytes: int = 16 << 10
    results_bytes: int = 1 << 20

    @property
    def cpu_s(self) -> int:
        """RLIMIT_CPU: the wall limit rounded up, plus one second (the wall limit fires first)."""
        return math.ceil(self.timeout_s) + 1

    def for_harness(self) -> dict:
        return {
            "cpu_s": self.cpu_s,
            "address_space_bytes": self.address_space_bytes,
            "file_size_bytes": self.file_size_bytes,
            "max_processes": self.max_processes,
            "open_files": self.open_files,
        }


@dataclass(frozen=True)
class Program:
    """One program and its tests, and the rules that decide them.

    Under ``Verdict.ROBUST`` ``setup_code`` runs between the code and the tests, and tests of
    the form ``assert EXPR == LITERAL`` are decided in this process (:mod:`evaluate.checks`).
    Under ``Verdict.LEGACY`` (the earlier tool's semantics) the code runs in a plain dict,
    ``setup_code`` is ignored, every test runs as a statement and the first failure ends the run.
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
        return split_tests(self.tests)


@dataclass
class _Streams:
    """Bytes read from the child's pipes (``stdout``, ``stderr``, ``results``), each capped."""

    caps: dict[str, int]
    data: dict[str, bytearray] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, chunk: bytes) -> None:
        buf = self.data.setdefault(name, bytearray())
        room = self.caps[name] - len(buf)
        if room > 0:
            buf += chunk[:room]
        self.total[name] = self.total.get(name, 0) + len(chunk)

    def get(self, name: str) -> bytes:
        return bytes(self.data.get(name, b""))

    def text(self) -> str:
        """stdout and stderr as text for the result, with what was dropped."""
        parts = []
        for name in ("stdout", "stderr"):
            data = self.get(name)
            if data:
                dropped = self.total.get(name, 0) - len(data)
                tail = f"\n[... {dropped} more bytes dropped]" if dropped else ""
                parts.append(f"--- {name} ---\n{data.decode('utf-8', 'replace')}{tail}")
        return "\n".join(parts)


class Sandbox:
    """Runs programs in bubblewrap (or, unisolated, as plain processes). Thread-safe."""

    def __init__(
        self,
        kind: SandboxKind | str = DEFAULT_SANDBOX,
        *,
        limits: Limits = Limits(),
        python: str | None = None,
    ) -> None:
        """
        Args:
            kind: ``bwrap`` (isolated) or ``process`` (resource limits only).
            limits: the limits of every program.
            python: interpreter that runs the programs [default: this one, resolved].

        Raises:
            InputError: ``bwrap`` asked for but not installed.
        """
        self.kind = SandboxKind(kind)
        self.limits = limits
        self.python = os.path.realpath(python or sys.executable)
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._bwrap = shutil.which("bwrap") if self.kind is SandboxKind.BWRAP else None
        if self.kind is SandboxKind.BWRAP and self._bwrap is None:
            raise InputError(f"bwrap: not found on PATH; {INSTALL_HINT}")
        self._bwrap_prefix = self._bwrap_args() if self._bwrap else []
        self._harness_code = _compiled_harness(self.python)
        # Same interpreter: code that does not compile fails here exactly as in the runner.
        self._compiles_here = self.python == os.path.realpath(sys.executable)
        # As root, programs run under a unique unprivileged uid; without bwrap that uid must
        # be able to read the interpreter's files where they are.
        self._switch_uid = os.geteuid() == 0 and (self._bwrap is not None or _world_readable(self.python))

    # Public -------------------------------------------------------------------------------

    def check(self) -> None:
        """Run a known-good and a known-bad program; raise if the verdicts are not right.

        Raises:
            InputError: the sandbox cannot start here (message says what to do).
        """
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
        return {
            "kind": self.kind.value,
            "isolated": self.kind is SandboxKind.BWRAP,
            "bwrap_version": bwrap_version(self._bwrap) if self._bwrap else None,
            "python": self.python,
            "python_version": sys.version.split()[0],
            "limits": {**asdict(self.limits), "cpu_s": self.limits.cpu_s},
            # A returned value larger or deeper than this fails its test (evaluate/harness.py).
            "value_limits": {"max_bytes": harness.MAX_VALUE_BYTES, "max_depth": harness.MAX_VALUE_DEPTH},
            "unprivileged_uid": self._switch_uid or os.geteuid() != 0,
            # RLIMIT_NPROC does not bind uid 0.
            "max_processes_enforced": self._switch_uid or os.geteuid() != 0,
            "warnings": self._warnings(),
        }

    def _warnings(self) -> list[str]:
        if os.geteuid() == 0 and not self._switch_uid:
            return [
                f"warning: running as root and {self.python} is not readable by other users: programs "
                "run as root and the process-count limit is not enforced"
            ]
        return []

    def run(self, program: Program) -> ExecutionResult:
        """Run ``program`` and its tests; never raises for anything the program does.

        A program whose code does not compile is not started: this interpreter compiles it
        as the runner would (same flags) and reports the runner's result.

        Raises:
            SandboxError: the runner did not start (a broken sandbox, not a bad program).
        """
        checks = program.checks
        if self._compiles_here:
            message = compile_failure(program.code)
            if message is not None:
                return _not_compiled(program, checks, message)
        nonce = secrets.token_hex(16)
        read_fd, write_fd = os.pipe()
        workdir = SANDBOX_WORKDIR if self._bwrap else tempfile.mkdtemp(prefix="pva-eval-")
        job = self._job(program, checks, nonce, write_fd, workdir)
        start = time.monotonic()
        proc = self._launch(read_fd, write_fd, workdir)
        try:
            code = self._harness_code
            _send_job(proc, b"%d\n" % len(code) + code + marshal.dumps(job))
            streams, timed_out, exit_status = self._collect(proc, read_fd, start)
        finally:
            _kill_group(proc)
            os.close(read_fd)
            self._remove_workdir(workdir)
        wall = time.monotonic() - start
        records = harness.parse_records(streams.get("results"), nonce)
        output = streams.text()
        if not records["ready"] and not timed_out:
            raise SandboxError(f"the test runner did not start (exit status {exit_status}): {output[-500:]}")
        return decide(program.tests, checks, records, self._ending(timed_out, exit_status, output, wall))

    # Internals ----------------------------------------------------------------------------

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
            "limits": self.limits.for_harness(),
            "workdir": workdir,
            "run_as": self._run_as() if self._switch_uid else None,
            "process_mode": self.kind is SandboxKind.PROCESS,
        }

    def _launch(self, read_fd: int, write_fd: int, workdir: str) -> subprocess.Popen:
        """Start the runner holding the only write end of the result pipe (closed here either way)."""
        command = [*self._bwrap_prefix, self.python, "-u", "-S", "-s", "-B", "-c", BOOTSTRAP]
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                start_new_session=True,  # one process group to kill
                env=PROGRAM_ENV,
                cwd=None if self._bwrap else workdir,
            )
        except OSError:
            os.close(read_fd)
            self._remove_workdir(workdir)
            raise
        finally:
            os.close(write_fd)  # the child holds the only write end now

    def _remove_workdir(self, workdir: str) -> None:
        """Remove a ``process`` run's temporary work dir (bwrap's tmpfs vanishes by itself)."""
        if not self._bwrap:
            shutil.rmtree(workdir, ignore_errors=True)

    def _ending(self, timed_out: bool, exit_status: int | None, output: str, wall: float) -> Ending:
        """How the run ended, with the limits the verdict's messages name."""
        return Ending(
            timed_out=timed_out,
            exit_status=exit_status,
            output=output,
            wall_time_s=wall,
            timeout_s=self.limits.timeout_s,
            cpu_s=self.limits.cpu_s,
            memory_mib=self.limits.address_space_bytes >> 20,
        )

    def _run_as(self) -> list[int]:
        with self._lock:
            n = next(self._counter)
        uid = RUN_AS_BASE + ((os.getpid() & 0xFFF) << 12) + (n & 0xFFF)
        return [uid, uid]

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
        args += ["--"]
        return args

    def _collect(self, proc: subprocess.Popen, read_fd: int, start: float) -> tuple[_Streams, bool, int | None]:
        """Drain stdout, stderr and the result pipe until EOF, the deadline, or exit + grace."""
        assert proc.stdout is not None and proc.stderr is not None
        names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr", read_fd: "results"}
        limits = self.limits
        caps = {"stdout": limits.output_bytes, "stderr": limits.output_bytes, "results": limits.results_bytes}
        streams = _Streams(caps=caps)
        deadline = start + limits.timeout_s
        open_fds = set(names)
        exit_status: int | None = None
        exited_at: float | None = None
        timed_out = False
        with selectors.DefaultSelector() as selector:
            for fd in open_fds:
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            while open_fds:
                now = time.monotonic()
                if exit_status is None:
                    exit_status = proc.poll()
                    if exit_status is not None:
                        exited_at = now
                if exited_at is not None and now - exited_at > DRAIN_GRACE_S:
                    break  # the runner is gone; a stray child keeps a pipe open
                if now >= deadline:
                    timed_out = exit_status is None
                    break
                wait = min(deadline - now, 0.05 if exit_status is None else DRAIN_GRACE_S)
                for key, _ in selector.select(timeout=wait):
                    fd = key.fd
                    try:
                        chunk = os.read(fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            raise
                        chunk = b""
                    if chunk:
                        streams.add(names[fd], chunk)
                    else:
                        selector.unregister(fd)
                        open_fds.discard(fd)
        if exit_status is None and not timed_out:
            # Every pipe closed: the runner is exiting, or closed its pipes and runs on.
            try:
                exit_status = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        return streams, timed_out, exit_status


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


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _world_readable(path: str) -> bool:
    """Every folder above the interpreter's prefix lets other users through."""
    prefix = Path(path).parent.parent
    return all(os.stat(p).st_mode & 0o001 for p in [prefix, *prefix.parents])


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


def _compiled_harness(python: str) -> bytes:
    """The runner's code object, marshalled for ``python`` (compiled here when it is this interpreter).

    Raises:
        InputError: another interpreter that cannot compile the runner.
    """
    if python == os.path.realpath(sys.executable):
        return marshal.dumps(compile(HARNESS_SOURCE, "<harness>", "exec", dont_inherit=True))
    try:
        done = subprocess.run(
            [python, "-S", "-s", "-B", "-c", _COMPILE_HARNESS],
            input=HARNESS_SOURCE.encode(),
            capture_output=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise InputError(f"{python}: cannot compile the test runner ({_one_line(str(exc))}); use Python 3.11+") from exc
    return done.stdout


def _not_compiled(program: Program, checks: tuple[Check, ...], message: str) -> ExecutionResult:
    """The result the runner would report for code that does not compile (its first stage)."""
    records = {"ready": True, "stage": (harness.STAGE_CODE, harness.SYNTAX_ERROR, message), "tests": {},
               "values": {}, "done": len(checks)}
    return decide(program.tests, checks, records, Ending(timed_out=False, exit_status=0))


def _send_job(proc: subprocess.Popen, payload: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the runner died at start; reported as "did not start"


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
