"""The test runner that executes INSIDE the sandbox: standard library only, no project imports.

The launcher (:mod:`evaluate.sandbox`) starts ``python -u -S -s -B -c <bootstrap>``, writes
this module's compiled code (the bootstrap runs it as ``__main__``) and then one job (a
``marshal``-encoded dict: built into the interpreter, so no import time, unlike ``json``) to
its stdin and reads results from a pipe whose write end the child inherits.
Job keys: ``nonce``, ``results_fd``, ``code``, ``setup_code``, ``checks`` (one
``[kind, source]`` per test: kind ``value``, source an expression; or kind ``statement``,
source a statement), ``legacy`` (bool), ``limits`` (``cpu_s``, ``address_space_bytes``,
``file_size_bytes``, ``max_processes``, ``open_files``), ``workdir``, ``run_as`` ([uid, gid]
or null) and ``process_mode``.

Sequence (:func:`main`): read the job and replace stdin with ``/dev/null``; set resource
limits with hard = soft (an unprivileged process cannot raise them again); when started as
root, give the work dir to ``run_as`` and switch to that unprivileged uid, which clears every
capability; send ``ready``; compile and run ``code`` in a fresh module ``solution``; run
``setup_code`` in the same namespace (it may use classes the code defines, MBPP tasks 367 and
927); run every check, each on its own, sending its records; send ``done``; ``os._exit(0)``
so no atexit hook or stray thread of the program runs afterwards.

A *value* check evaluates its expression (the left side of ``assert <expression> ==
<literal>``; the literal stays with the launcher) and sends the value in the plain-data
encoding below; the launcher decides ``value == literal`` itself. A *statement* check runs the
statement and reports whether it raised.

Legacy mode (``legacy``: the earlier tool's semantics, for its verdict): ``code`` runs in a
plain fresh dict (``exec(code, {})``), ``setup_code`` is not run, every check is a statement,
and the first failing test ends the run.

Result channel. Each record is one line ``<nonce> <pid> <kind> <fields...>`` written with a
single ``os.write`` of at most :data:`MAX_RECORD_BYTES` (under ``PIPE_BUF``, so records never
interleave) on ``results_fd``: ``ready``; ``stage code|setup <error_type> <hex message>``;
``test <i> ok`` or ``test <i> <error_type> <hex message>``; ``part <i> <hex>`` (zero or more)
then ``value <i> <hex>``: the encoded value of check ``i``, its hex cut into pieces;
``done <n_tests>``. The launcher keeps only lines that carry the nonce and the pid of the
process that sent ``ready``.

Plain-data encoding (:func:`_make_encoder`, decoded by :mod:`evaluate.values` with its own
size and depth limits; never ``marshal``, ``pickle`` or ``eval``): ``N`` None, ``T``/``F``
booleans, ``i<hex>;`` int (hex, so ints beyond the 4300-digit ``str()`` limit survive),
``f<float.hex()>;`` float (exact, ``-0.0``, ``inf`` and ``nan`` included),
``c<float.hex()>,<float.hex()>;`` complex, ``s<hex length>:<UTF-8, surrogates kept>`` str,
``b<hex length>:<bytes>`` bytes, ``l``/``t``/``S``/``Z`` (list, tuple, set, frozenset)
``<hex count>;`` then the items, ``d<hex count>;`` then key, value, key, value... Only the
exact builtin types are admitted; an instance of a subclass of one (``Counter``,
``OrderedDict``, a namedtuple, an ``IntEnum``) is encoded as its builtin base, read through
the base type's own methods (``dict.items(v)``, ``tuple.__iter__(v)``, ``int.__index__(v)``
...), so its overridden ``__eq__`` or ``__iter__`` never runs. Anything else (a custom
object, a generator, a value over :data:`MAX_VALUE_BYTES` or nested deeper than
:data:`MAX_VALUE_DEPTH`) fails the test with a message naming it.

Threat model, honestly:

- Defeated: printing anything (stdout and stderr are never parsed, so fake "PASSED" lines or
  fake JSON do nothing); writing guesses to every file descriptor (no 128-bit nonce, which is
  not in argv, the environment or the file system: it came over stdin, now closed); exiting
  early by any route (``sys.exit``/``SystemExit`` are caught and fail the stage; ``os._exit``,
  signals and crashes leave no ``done``); forked copies of this process (their pid differs
  from the ``ready`` pid); rebinding builtins or this module's globals (``AssertionError``,
  ``exec``, ``compile``, ``print``, ``__builtins__``, ``__main__.*``): the runner holds
  references taken before the program ran, restores the builtins module, the recursion limit
  and trace hooks before each test; ``assert`` is compiled with ``optimize=0``.
- Defeated for value checks (every test of the 388 validation problems): objects whose
  ``__eq__`` is always true, ``__eq__``/``__iter__`` overrides on builtin subclasses, and
  forged records from code that walks frames or ``gc`` to read the nonce: the launcher
  compares the value with a literal the sandbox never saw, so a forged record can at most
  claim a value, and only the right value passes; ``test <i> ok`` is not accepted for a
  value check.
- Not defeated: for statement checks (and the legacy verdict), code written to attack this
  runner from inside the same interpreter (walking frames or ``gc`` to read the nonce and
  forge ``ok`` records, ``ctypes`` or ``/proc/self/mem`` writes, trace functions that rewrite
  frames) and tests gamed by their own semantics (an always-equal object, patching
  ``math.isclose``). For every check, a program that special-cases the inputs it was shown
  (the prompt lists the tests) passes: the value it returns is the right one. Those need code
  aimed at the tests or this harness; the sandbox still protects the machine from them.
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
PART = "part"
VALUE = "value"
DONE = "done"
OK = "ok"
STAGE_CODE = "code"
STAGE_SETUP = "setup"
CHECK_VALUE = "value"  # the same strings as evaluate.checks.CheckKind (a test pins it)
CHECK_STATEMENT = "statement"
# Error types; the same strings as evaluate.outcomes.ErrorType (a test pins it).
SYNTAX_ERROR = "syntax_error"
ASSERTION_FAILED = "assertion_failed"
RUNTIME_ERROR = "runtime_error"
MEMORY = "memory"
MAX_MESSAGE_CHARS = 300  # keeps each message record far below PIPE_BUF (4096 bytes)
MAX_RECORD_BYTES = 4000  # every record, value pieces included, is one write below PIPE_BUF
VALUE_PIECE_CHARS = 3800  # hex characters of an encoded value per record
MAX_VALUE_BYTES = 64 << 10  # encoded size of one test's value
MAX_VALUE_DEPTH = 48  # nesting of containers in one value
SOLUTION_MODULE = "solution"
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

# Tags of the plain-data encoding (the launcher's decoder imports them).
TAG_NONE = b"N"
TAG_TRUE = b"T"
TAG_FALSE = b"F"
TAG_INT = b"i"
TAG_FLOAT = b"f"
TAG_COMPLEX = b"c"
TAG_STR = b"s"
TAG_BYTES = b"b"
TAG_LIST = b"l"
TAG_TUPLE = b"t"
TAG_SET = b"S"
TAG_FROZENSET = b"Z"
TAG_DICT = b"d"
END = b";"
LENGTH_END = b":"
COMPLEX_SEP = b","


class UnsupportedValue(Exception):
    """The value cannot be sent as plain data; its message says why (runner side)."""


def main() -> None:  # noqa: C901 - one linear script; state stays in locals on purpose
    """Run one job from stdin (only ever inside the sandbox)."""
    job = marshal.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    nonce = job["nonce"]
    results_fd = int(job["results_fd"])
    checks = [(str(kind), str(source)) for kind, source in job["checks"]]
    code = job["code"]
    setup_code = job["setup_code"]
    legacy = bool(job["legacy"])
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
    eval_ = eval
    type_ = type
    str_ = str
    len_ = len
    range_ = range
    issubclass_ = issubclass
    hex_ = bytes.hex
    base_exception = BaseException
    assertion_error = AssertionError
    memory_error = MemoryError
    syntax_error = SyntaxError
    value_error = ValueError
    recursion_error = RecursionError
    unsupported_value = UnsupportedValue
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
    encode = _make_encoder(MAX_VALUE_BYTES, MAX_VALUE_DEPTH)
    ready, stage_kind, test_kind, part_kind, value_kind, done_kind, ok = READY, STAGE, TEST, PART, VALUE, DONE, OK
    stage_code, stage_setup, check_value = STAGE_CODE, STAGE_SETUP, CHECK_VALUE
    syntax_error_type, assertion_failed, runtime_error, memory = SYNTAX_ERROR, ASSERTION_FAILED, RUNTIME_ERROR, MEMORY
    max_message, piece = MAX_MESSAGE_CHARS, VALUE_PIECE_CHARS

    def send(*fields: object) -> None:
        # The pid is read per record: a forked copy of this runner reports under its own.
        line = " ".join([nonce, str_(getpid()), *[str_(f) for f in fields]]) + "\n"
        write(results_fd, line.encode("utf-8", "replace"))

    def send_value(index: int, payload: bytes) -> None:
        text = hex_(payload)
        start = 0
        while len_(text) - start > piece:
            send(part_kind, index, text[start : start + piece])
            start += piece
        send(value_kind, index, text[start:])

    def describe(exc: BaseException) -> str:
        try:
            name = type_(exc).__name__
            text = str_(exc)
            message = f"{name}: {text}" if text else name
        except base_exception:
            message = "<exception that cannot be printed>"
        return message[:max_message].encode("utf-8", "replace").hex()

    def classify(exc: BaseException) -> str:
        kind = type_(exc)
        if issubclass_(kind, assertion_error):
            return assertion_failed
        if issubclass_(kind, memory_error):
            return memory
        return runtime_error

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
    send(ready)

    if legacy:
        namespace: dict = {}  # exec(code, {}) as the earlier tool did
    else:
        module = type(sys)(SOLUTION_MODULE)  # a module object without importing ``types``
        sys.modules[SOLUTION_MODULE] = module
        namespace = module.__dict__
        namespace["__builtins__"] = builtins_module
    n_tests = len_(checks)

    try:
        compiled = compile_(code, "<solution>", "exec", dont_inherit=True, optimize=0)
    except (syntax_error, value_error, recursion_error, memory_error) as exc:
        send(stage_kind, stage_code, syntax_error_type, describe(exc))
        send(done_kind, n_tests)
        exit_now(0)
    try:
        exec_(compiled, namespace)
        failure = None
    except base_exception as exc:  # SystemExit and KeyboardInterrupt fail the stage too
        failure = exc
    restore()
    if failure is not None:
        namespace.clear()  # frees what a memory bomb holds, so reporting can allocate
        send(stage_kind, stage_code, classify(failure), describe(failure))
        send(done_kind, n_tests)
        exit_now(0)

    if setup_code.strip() and not legacy:
        namespace["__builtins__"] = builtins_module
        try:
            exec_(compile_(setup_code, "<test_setup_code>", "exec", dont_inherit=True, optimize=0), namespace)
            failure = None
        except base_exception as exc:
            failure = exc
        restore()
        if failure is not None:
            send(stage_kind, stage_setup, classify(failure), describe(failure))
            send(done_kind, n_tests)
            exit_now(0)

    for index in range_(n_tests):
        kind, source = checks[index]
        namespace["__builtins__"] = builtins_module
        value = None
        try:
            if kind == check_value:
                value = eval_(compile_(source, f"<test {index}>", "eval", dont_inherit=True, optimize=0), namespace)
            else:
                exec_(compile_(source, f"<test {index}>", "exec", dont_inherit=True, optimize=0), namespace)
            failure = None
        except base_exception as exc:
            failure = exc
        restore()
        if failure is not None:
            send(test_kind, index, classify(failure), describe(failure))
            if legacy:
                break
            continue
        if kind != check_value:
            send(test_kind, index, ok)
            continue
        try:
            payload = encode(value)
        except unsupported_value as exc:  # the runner's own exception: its text is safe to read
            send(test_kind, index, assertion_failed, str_(exc)[:max_message].encode("utf-8", "replace").hex())
            continue
        except (memory_error, recursion_error) as exc:
            send(test_kind, index, classify(exc), describe(exc))
            continue
        value = None
        send_value(index, payload)
    send(done_kind, n_tests)
    exit_now(0)


def _make_encoder(max_bytes: int, max_depth: int):  # noqa: C901 - one dispatch, kept in one closure
    """The plain-data encoder, bound to references taken now (before any program runs).

    The returned function uses only these locals, never a global or builtin name (hence no
    annotations inside: they would be looked up at each call), so a program that rebinds
    builtins or this module's globals cannot change what it sends (a test checks its code).
    """
    none, true, false = TAG_NONE, TAG_TRUE, TAG_FALSE
    tag_int, tag_float, tag_complex, tag_str, tag_bytes = TAG_INT, TAG_FLOAT, TAG_COMPLEX, TAG_STR, TAG_BYTES
    tag_list, tag_tuple, tag_set, tag_frozenset, tag_dict = TAG_LIST, TAG_TUPLE, TAG_SET, TAG_FROZENSET, TAG_DICT
    end, length_end, complex_sep = END, LENGTH_END, COMPLEX_SEP
    type_, issubclass_, len_ = type, issubclass, len
    bool_, int_, float_, complex_, str_, bytes_ = bool, int, float, complex, str, bytes
    list_, tuple_, set_, frozenset_, dict_, none_type = list, tuple, set, frozenset, dict, type(None)
    int_index, int_format, int_bit_length = int.__index__, int.__format__, int.bit_length
    float_hex, complex_complex, str_str, str_encode = float.hex, complex.__complex__, str.__str__, str.encode
    bytes_bytes, bytes_join = bytes.__bytes__, bytes.join
    list_iter, tuple_iter, set_iter, frozenset_iter, dict_items = (
        list.__iter__, tuple.__iter__, set.__iter__, frozenset.__iter__, dict.items,
    )
    list_len, tuple_len, set_len, frozenset_len, dict_len = (
        list.__len__, tuple.__len__, set.__len__, frozenset.__len__, dict.__len__,
    )
    type_name = type.__dict__["__name__"].__get__
    unsupported, base_exception = UnsupportedValue, BaseException
    sequences = ((list_, tag_list, list_iter, list_len), (tuple_, tag_tuple, tuple_iter, tuple_len))
    sets = ((set_, tag_set, set_iter, set_len), (frozenset_, tag_frozenset, frozenset_iter, frozenset_len))

    def name_of(kind):
        try:
            return str_str(type_name(kind))
        except base_exception:
            return "?"

    def encode(value):
        out = []
        size = [0]

        def add(chunk):
            size[0] += len_(chunk)
            if size[0] > max_bytes:
                raise unsupported(f"the value is larger than {max_bytes} bytes as plain data")
            out.append(chunk)

        def number(text):
            add(str_encode(text, "ascii"))

        def walk(v, depth):
            if depth > max_depth:
                raise unsupported(f"the value is nested deeper than {max_depth} levels")
            kind = type_(v)
            if kind is none_type:
                add(none)
                return
            if kind is bool_:
                add(true if v else false)
                return
            if issubclass_(kind, int_):
                n = int_index(v)
                if int_bit_length(n) > 4 * max_bytes:
                    raise unsupported(f"the value is larger than {max_bytes} bytes as plain data")
                add(tag_int)
                number(int_format(n, "x"))
                add(end)
                return
            if issubclass_(kind, float_):
                add(tag_float)
                number(float_hex(v))
                add(end)
                return
            if issubclass_(kind, complex_):
                c = complex_complex(v)
                add(tag_complex)
                number(float_hex(c.real))
                add(complex_sep)
                number(float_hex(c.imag))
                add(end)
                return
            if issubclass_(kind, str_):
                s = str_str(v)
                if len_(s) > max_bytes:
                    raise unsupported(f"the value is larger than {max_bytes} bytes as plain data")
                data = str_encode(s, "utf-8", "surrogatepass")
                add(tag_str)
                number(int_format(len_(data), "x"))
                add(length_end)
                add(data)
                return
            if issubclass_(kind, bytes_):
                data = bytes_bytes(v)
                add(tag_bytes)
                number(int_format(len_(data), "x"))
                add(length_end)
                add(data)
                return
            for base, tag, iterate, length in sequences + sets:
                if issubclass_(kind, base):
                    add(tag)
                    number(int_format(length(v), "x"))
                    add(end)
                    for item in iterate(v):
                        walk(item, depth + 1)
                    return
            if issubclass_(kind, dict_):
                add(tag_dict)
                number(int_format(dict_len(v), "x"))
                add(end)
                for key, item in dict_items(v):
                    walk(key, depth + 1)
                    walk(item, depth + 1)
                return
            raise unsupported(
                f"returned an object of type {name_of(kind)}; only None, bool, int, float, complex, str, "
                "bytes, list, tuple, dict, set and frozenset values (or subclasses of them) can be compared"
            )

        walk(value, 0)
        return bytes_join(b"", out)

    return encode


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
        "tests": {index: (error_type | "ok", message)}, "values": {index: bytes},
        "done": n_tests | None}``, from the records of the process that sent ``ready``
        (first record per test wins: a test has a ``tests`` entry or a ``values`` entry).
    """
    out: dict = {"ready": False, "stage": None, "tests": {}, "values": {}, "done": None}
    pieces: dict[int, list[str]] = {}
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
                continue
            if kind == DONE:
                out["done"] = int(fields[0])
                continue
            index = int(fields[0])
            if index in out["tests"] or index in out["values"]:
                continue
            if kind == TEST:
                out["tests"][index] = (fields[1], _unhex(fields[2]) if len(fields) > 2 else "")
            elif kind == PART:
                pieces.setdefault(index, []).append(fields[1])
            elif kind == VALUE:
                out["values"][index] = bytes.fromhex("".join([*pieces.pop(index, []), fields[1]]))
        except (IndexError, ValueError):
            continue
    return out


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode("utf-8", "replace")


if __name__ == "__main__":
    main()
