"""The test runner that executes INSIDE the sandbox: standard library only, no project imports.

The launcher (:mod:`evaluate.sandbox`) starts ``python -u -S -s -B -c <this source>``, writes
one job (a ``marshal``-encoded dict: built into the interpreter, so no import time, unlike
``json``) to its stdin and reads results from a pipe whose write end the child inherits.
Job keys: ``nonce``, ``results_fd``, ``code``, ``setup_code``, ``tests``, ``limits``
(``cpu_s``, ``address_space_bytes``, ``file_size_bytes``, ``max_processes``, ``open_files``),
``workdir``, ``run_as`` ([uid, gid] or null) and ``process_mode``.

Sequence (:func:`main`): read the job and replace stdin with ``/dev/null``; set resource
limits with hard = soft (an unprivileged process cannot raise them again); when started as
root, give the work dir to ``run_as`` and switch to that unprivileged uid, which clears every
capability; send ``ready``; compile and run ``code`` in a fresh module ``solution``; run
``setup_code`` in the same namespace (it may use classes the code defines, MBPP tasks 367 and
927); run every test, each on its own, sending one record per test; send ``done``;
``os._exit(0)`` so no atexit hook or stray thread of the program runs afterwards.

Result channel. Each record is one line ``<nonce> <pid> <kind> <fields...>`` written with a
single ``os.write`` (under ``PIPE_BUF``, so records never interleave) on ``results_fd``:
``ready``; ``stage code|setup <error_type> <hex message>``; ``test <i> ok`` or
``test <i> <error_type> <hex message>``; ``done <n_passed> <n_tests>``. The launcher keeps
only lines that carry the nonce and the pid of the process that sent ``ready``, and calls a
program passed only when ``done`` arrives with every test ``ok``.

Threat model, honestly:

- Defeated: printing anything (stdout and stderr are never parsed, so fake "PASSED" lines or
  fake JSON do nothing); writing guesses to every file descriptor (no 128-bit nonce, which is
  not in argv, the environment or the file system: it came over stdin, now closed); exiting
  early by any route (``sys.exit``/``SystemExit`` are caught and fail the stage; ``os._exit``,
  signals and crashes leave no ``done``); forked copies of this process (their pid differs
  from the ``ready`` pid); rebinding builtins or this module's globals (``AssertionError``,
  ``exec``, ``compile``, ``print``, ``__builtins__``, ``__main__.*``): the runner holds
  references taken before the program ran, restores the builtins module, the recursion limit
  and trace hooks before each test, and decides "passed" only by a test statement returning
  normally; ``assert`` is compiled with ``optimize=0`` so it cannot be switched off.
- Not defeated: code written to attack this runner from inside the same interpreter (walking
  frames or ``gc`` to read the nonce, ``ctypes`` or ``/proc/self/mem`` writes, trace functions
  that rewrite frames), and tests gamed by their own semantics (returning an object whose
  ``__eq__`` is always true, patching ``math.isclose``). Those need code aimed at this
  harness; the sandbox still protects the machine from them, not the verdict.
"""

import builtins
import marshal
import os
import resource
import sys

# Record kinds and fields; the launcher parses with :func:`parse_records`.
READY = "ready"
STAGE = "stage"
TEST = "test"
DONE = "done"
OK = "ok"
STAGE_CODE = "code"
STAGE_SETUP = "setup"
# Error types; the same strings as evaluate.outcomes.ErrorType (a test pins it).
SYNTAX_ERROR = "syntax_error"
ASSERTION_FAILED = "assertion_failed"
RUNTIME_ERROR = "runtime_error"
MEMORY = "memory"
MAX_MESSAGE_CHARS = 300  # keeps each record far below PIPE_BUF (4096 bytes)
SOLUTION_MODULE = "solution"
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


def main() -> None:  # noqa: C901 - one linear script; state stays in locals on purpose
    """Run one job from stdin (only ever inside the sandbox)."""
    job = marshal.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    nonce = job["nonce"]
    results_fd = int(job["results_fd"])
    tests = list(job["tests"])
    code = job["code"]
    setup_code = job["setup_code"]
    limits = job["limits"]
    workdir = job["workdir"]
    run_as = job["run_as"]
    process_mode = bool(job["process_mode"])
    del job  # the nonce lives only in this frame from here on

    # Everything used after the program starts is bound here, before it can be rebound.
    write = os.write
    exit_now = os._exit
    compile_ = compile
    exec_ = exec
    type_ = type
    str_ = str
    len_ = len
    range_ = range
    issubclass_ = issubclass
    base_exception = BaseException
    assertion_error = AssertionError
    memory_error = MemoryError
    syntax_error = SyntaxError
    value_error = ValueError
    recursion_error = RecursionError
    settrace = sys.settrace
    setprofile = sys.setprofile
    setrecursionlimit = sys.setrecursionlimit
    recursion_limit = sys.getrecursionlimit()
    builtins_dict = builtins.__dict__
    builtins_snapshot = dict(builtins_dict)
    clear_builtins = builtins_dict.clear
    update_builtins = builtins_dict.update
    builtins_module = builtins
    getpid = os.getpid

    def send(*fields: object) -> None:
        # The pid is read per record: a forked copy of this runner reports under its own.
        line = " ".join([nonce, str_(getpid()), *[str_(f) for f in fields]]) + "\n"
        write(results_fd, line.encode("utf-8", "replace"))

    def describe(exc: BaseException) -> str:
        try:
            name = type_(exc).__name__
            text = str_(exc)
            message = f"{name}: {text}" if text else name
        except base_exception:
            message = "<exception that cannot be printed>"
        return message[:MAX_MESSAGE_CHARS].encode("utf-8", "replace").hex()

    def classify(exc: BaseException) -> str:
        kind = type_(exc)
        if issubclass_(kind, assertion_error):
            return ASSERTION_FAILED
        if issubclass_(kind, memory_error):
            return MEMORY
        return RUNTIME_ERROR

    def restore() -> None:
        # Undo what the program may have rebound before the runner uses any builtin again.
        settrace(None)
        setprofile(None)
        clear_builtins()
        update_builtins(builtins_snapshot)
        setrecursionlimit(recursion_limit)

    _apply_limits(limits)
    if run_as is not None and os.geteuid() == 0:
        _drop_privileges(int(run_as[0]), int(run_as[1]), workdir)
    if process_mode:
        _process_mode_guards()
    # Count the processes this uid already has, so a fork limit is per program.
    _limit_processes(int(limits["max_processes"]))
    os.chdir(workdir)
    send(READY)

    module = type(sys)(SOLUTION_MODULE)  # a module object without importing ``types``
    sys.modules[SOLUTION_MODULE] = module
    namespace = module.__dict__
    namespace["__builtins__"] = builtins_module
    n_tests = len_(tests)

    try:
        compiled = compile_(code, "<solution>", "exec", dont_inherit=True, optimize=0)
    except (syntax_error, value_error, recursion_error, memory_error) as exc:
        send(STAGE, STAGE_CODE, SYNTAX_ERROR, describe(exc))
        send(DONE, 0, n_tests)
        exit_now(0)
    try:
        exec_(compiled, namespace)
        failure = None
    except base_exception as exc:  # SystemExit and KeyboardInterrupt fail the stage too
        failure = exc
    restore()
    if failure is not None:
        namespace.clear()  # frees what a memory bomb holds, so reporting can allocate
        send(STAGE, STAGE_CODE, classify(failure), describe(failure))
        send(DONE, 0, n_tests)
        exit_now(0)

    if setup_code.strip():
        namespace["__builtins__"] = builtins_module
        try:
            exec_(compile_(setup_code, "<test_setup_code>", "exec", dont_inherit=True, optimize=0), namespace)
            failure = None
        except base_exception as exc:
            failure = exc
        restore()
        if failure is not None:
            send(STAGE, STAGE_SETUP, classify(failure), describe(failure))
            send(DONE, 0, n_tests)
            exit_now(0)

    n_passed = 0
    for index in range_(n_tests):
        namespace["__builtins__"] = builtins_module
        try:
            statement = compile_(tests[index], f"<test {index}>", "exec", dont_inherit=True, optimize=0)
            exec_(statement, namespace)
            failure = None
        except base_exception as exc:
            failure = exc
        restore()
        if failure is None:
            n_passed += 1
            send(TEST, index, OK)
        else:
            send(TEST, index, classify(failure), describe(failure))
    send(DONE, n_passed, n_tests)
    exit_now(0)


def _apply_limits(limits: dict) -> None:
    """Resource limits with hard = soft; CPU gets one extra hard second (SIGXCPU, then SIGKILL)."""
    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["address_space_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)


def _drop_privileges(uid: int, gid: int, workdir: str) -> None:
    """Become ``uid``/``gid`` for good; changing every uid away from 0 clears all capabilities."""
    os.chown(workdir, uid, gid)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise SystemExit("harness: could not drop root privileges")


def _process_mode_guards() -> None:
    """Without bwrap: die with the launcher and never gain privileges through exec (needs ctypes)."""
    try:
        import ctypes
    except ImportError:  # an interpreter built without libffi: no guards to add
        return
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _limit_processes(extra: int) -> None:
    """RLIMIT_NPROC counts every process of the real uid, so allow what exists plus ``extra``."""
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    limit = count + extra
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def parse_records(data: bytes, nonce: str) -> dict:
    """Read the result channel (launcher side).

    Args:
        data: everything read from the results pipe.
        nonce: the job's nonce; lines without it are ignored.

    Returns:
        ``{"ready": bool, "stage": (stage, error_type, message) | None,
        "tests": {index: (error_type | "ok", message)}, "done": (n_passed, n_tests) | None}``,
        from the records of the process that sent ``ready`` (first record per test wins).
    """
    out: dict = {"ready": False, "stage": None, "tests": {}, "done": None}
    sender = None
    for raw in data.split(b"\n"):
        parts = raw.decode("utf-8", "replace").split(" ")
        if len(parts) < 3 or parts[0] != nonce:
            continue
        pid, kind, fields = parts[1], parts[2], parts[3:]
        if sender is None:
            if kind != READY:
                continue
            sender = pid
            out["ready"] = True
            continue
        if pid != sender or out["done"] is not None:
            continue
        try:
            if kind == STAGE and out["stage"] is None:
                out["stage"] = (fields[0], fields[1], _unhex(fields[2]))
            elif kind == TEST:
                index = int(fields[0])
                if index not in out["tests"]:
                    out["tests"][index] = (fields[1], _unhex(fields[2]) if len(fields) > 2 else "")
            elif kind == DONE:
                out["done"] = (int(fields[0]), int(fields[1]))
        except (IndexError, ValueError):
            continue
    return out


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode("utf-8", "replace")


if __name__ == "__main__":
    main()
