"""The test runner that executes INSIDE the sandbox: standard library only, no project imports.

The launcher (:mod:`evaluate.sandbox`) starts ``python -u -S -s -B -c <bootstrap>`` and writes
to its stdin this module's compiled code (run as ``__main__``), then one ``marshal``-encoded job
(built in, so no import time; its keys: ``Sandbox._job``).

:func:`main` reads the job (stdin then becomes ``/dev/null``), sets resource limits with hard =
soft, as root switches to the unprivileged ``run_as`` uid (which clears every capability),
sends ``ready``, runs ``code`` in a fresh module ``solution``, then ``setup_code`` in its
namespace (it may use the code's classes, MBPP tasks 367 and 927), then each check on its own,
sends ``done`` and ends with ``os._exit(0)`` (no atexit hook or stray thread runs). A value
check sends the value of its expression (the launcher compares it with the test's literal); a
statement check reports whether it raised.
Legacy mode (the earlier tool's verdict): ``exec(code, {})``, no ``setup_code``, statements
only, and the first failing test ends the run.

Result channel: one line per record, ``<nonce> <pid> <kind> <fields...>``, each one
``os.write`` of at most :data:`MAX_RECORD_BYTES` (under ``PIPE_BUF``: records never
interleave) on ``results_fd``: ``ready``; ``stage code|setup <error_type> <hex message>``;
``test <i> ok`` or ``test <i> <error_type> <hex message>``; ``part <i> <hex>`` (zero or more)
then ``value <i> <hex>``, the encoded value of check ``i``; ``done <n_tests>``. The launcher
keeps only lines with the nonce and the pid of the process that sent ``ready``.

Plain-data encoding (decoded by :mod:`evaluate.values`; never ``marshal``, ``pickle`` or
``eval``): ``N`` None, ``T``/``F``, ``i<hex>;`` int (hex: ints beyond the ``str()`` digit limit
survive), ``f<float.hex()>;``, ``c<real hex>,<imag hex>;``, ``s<hex length>:<UTF-8, surrogates
kept>``, ``b<hex length>:<bytes>``, ``l``/``t``/``S``/``Z`` (list, tuple, set, frozenset)
``<hex count>;`` then the items, ``d<hex count>;`` then key, value, ... A subclass of a builtin
(``Counter``, a namedtuple, an ``IntEnum``) is read through its base's own methods, so its
``__eq__`` or ``__iter__`` never runs. Anything else, or a value over :data:`MAX_VALUE_BYTES`
or nested deeper than :data:`MAX_VALUE_DEPTH`, fails its test with a message naming it.

Threat model:

- Defeated: printed fake results (stdout and stderr are never parsed); guessed records on every
  fd (the 128-bit nonce came over stdin, now closed, and is in no argv, environment or file);
  early exits (``SystemExit`` fails the stage; ``os._exit``, signals and crashes leave no
  ``done``); forked copies (another pid); rebound builtins or globals of this module
  (``AssertionError``, ``exec``, ``print``, ``__builtins__``, ``__main__.*``): every step holds
  references bound before the program ran, and the builtins, recursion limit and trace hooks
  are restored before each test; ``assert`` is compiled with ``optimize=0``.
- Defeated for value checks (every test of the 388 validation problems): always-equal objects,
  ``__eq__``/``__iter__`` overrides on builtin subclasses, and records forged by code that walks
  frames or ``gc`` to read the nonce: the parent compares with a literal the sandbox never saw,
  so a forger can only claim the right value, and ``test <i> ok`` fails a value check.
- Not defeated: for statement checks (and the legacy verdict), code that attacks this runner
  from inside the interpreter (forged ``ok`` records, ``ctypes`` or ``/proc/self/mem`` writes,
  frame-rewriting trace functions) or games the test itself (an always-equal object, a patched
  ``math.isclose``); for every check, code that special-cases the inputs the prompt shows. The
  sandbox still protects the machine from them.
"""

from __future__ import annotations

import builtins
import marshal
import os
import resource
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # the runner imports nothing it does not use
    from collections.abc import Callable

    Add = Callable[[bytes], None]

# Record kinds and fields; the launcher reads them with :func:`parse_records`.
READY = "ready"
STAGE = "stage"
TEST = "test"
PART = "part"
VALUE = "value"
DONE = "done"
OK = "ok"
STAGE_CODE = "code"
STAGE_SETUP = "setup"
CHECK_VALUE = "value"  # the strings of evaluate.verdict.CheckKind (a test pins them)
CHECK_STATEMENT = "statement"
# The strings of evaluate.verdict.ErrorType (a test pins them).
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
# The plain-data encoding's tags (see above; the decoder in evaluate.values reads them) and separators.
TAG_NONE, TAG_TRUE, TAG_FALSE = b"N", b"T", b"F"
TAG_INT, TAG_FLOAT, TAG_COMPLEX, TAG_STR, TAG_BYTES = b"i", b"f", b"c", b"s", b"b"
TAG_LIST, TAG_TUPLE, TAG_SET, TAG_FROZENSET, TAG_DICT = b"l", b"t", b"S", b"Z", b"d"
END, LENGTH_END, COMPLEX_SEP = b";", b":", b","


class UnsupportedValue(Exception):
    """The value cannot be sent as plain data; its message says why (runner side)."""


def main() -> None:
    """Run one job from stdin (only ever inside the sandbox)."""
    job = _read_job()
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
    del job  # the nonce lives only in this frame (and the channel's closures) from here on

    # Everything used once the program has started is bound here, before it can be rebound:
    # each step is a closure over references its factory takes now, and from the first step on
    # this frame names no global or builtin (a test checks both).
    exit_now = os._exit
    done_kind = DONE
    n_tests = len(checks)
    send, send_value, report = _make_channel(nonce, results_fd)
    run = _make_executor()
    encode = _make_encoder(MAX_VALUE_BYTES, MAX_VALUE_DEPTH)
    run_code, run_setup, run_checks = _make_steps(send, send_value, report, run, encode)

    _confine(limits, workdir, run_as, process_mode)
    send(READY)
    namespace = _new_namespace(legacy)
    if run_code(code, namespace) and (legacy or run_setup(setup_code, namespace)):
        run_checks(checks, namespace, legacy)
    send(done_kind, n_tests)
    exit_now(0)


def _read_job() -> dict:
    """The job from stdin, which then becomes ``/dev/null``: the program cannot read what the launcher sent."""
    job = marshal.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return job


def _confine(limits: dict, workdir: str, run_as: list | None, process_mode: bool) -> None:
    """Resource limits (hard = soft), the unprivileged uid (when root), process-mode guards, then the work dir."""
    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL a second later
    resource.setrlimit(resource.RLIMIT_AS, (limits["address_space_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    if run_as is not None and os.geteuid() == 0:
        # Changing every uid away from 0 clears all capabilities, for good.
        uid, gid = int(run_as[0]), int(run_as[1])
        os.chown(workdir, uid, gid)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if 0 in os.getresuid() or 0 in os.getresgid():
            raise SystemExit("harness: could not drop root privileges")
    if process_mode:
        _process_mode_guards()
    # RLIMIT_NPROC counts every process of the real uid: allow what exists plus the program's share.
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    limit = count + int(limits["max_processes"])
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    os.chdir(workdir)


def _new_namespace(legacy: bool) -> dict:
    """Where the program runs: a fresh module ``solution``, or (legacy) a plain fresh dict."""
    if legacy:
        return {}  # exec(code, {}) as the earlier tool did
    module = type(sys)(SOLUTION_MODULE)  # a module object without importing ``types``
    sys.modules[SOLUTION_MODULE] = module
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    return namespace


# The factories below run before the program does. Each binds the references its steps use to
# locals of its own, so the returned closures name no global or builtin: a program that rebinds
# builtins or this module's globals cannot change what they do or send.


def _make_channel(nonce: str, results_fd: int) -> tuple[Callable[..., None], Callable[[int, bytes], None],
                                                        Callable[..., None]]:
    """``send(*fields)``: one record; ``send_value(index, payload)``: a value in pieces; ``report``: a failure."""
    write, getpid, str_, len_, hex_, type_, issubclass_ = os.write, os.getpid, str, len, bytes.hex, type, issubclass
    base_exception, assertion_error, memory_error = BaseException, AssertionError, MemoryError
    part_kind, value_kind, piece, max_message = PART, VALUE, VALUE_PIECE_CHARS, MAX_MESSAGE_CHARS
    assertion_failed, memory, runtime_error = ASSERTION_FAILED, MEMORY, RUNTIME_ERROR

    def send(*fields: object) -> None:
        """Write one record with a single ``os.write``; the pid is read per record (a fork sends its own)."""
        line = " ".join([nonce, str_(getpid()), *[str_(f) for f in fields]]) + "\n"
        write(results_fd, line.encode("utf-8", "replace"))

    def send_value(index: int, payload: bytes) -> None:
        """The value's hex: ``part`` records, then the last piece as ``value``."""
        text = hex_(payload)
        start = 0
        while len_(text) - start > piece:
            send(part_kind, index, text[start : start + piece])
            start += piece
        send(value_kind, index, text[start:])

    def report(kind: str, where: object, exc: BaseException, error_type: str | None = None) -> None:
        """Send ``kind where error_type message``: the exception's error type unless given, and its
        ``Type: text``, cut (never raises, whatever the exception does)."""
        if error_type is None:
            cls = type_(exc)
            error_type = runtime_error
            if issubclass_(cls, assertion_error):
                error_type = assertion_failed
            elif issubclass_(cls, memory_error):
                error_type = memory
        try:
            name = type_(exc).__name__
            text = str_(exc)
            message = f"{name}: {text}" if text else name
        except base_exception:
            message = "<exception that cannot be printed>"
        send(kind, where, error_type, message[:max_message].encode("utf-8", "replace").hex())

    return send, send_value, report


def _make_executor() -> Callable[..., tuple[object, BaseException | None]]:
    """``run(source, filename, namespace, evaluate=False)``: the value of ``source`` and what it raised.

    ``source`` is text (compiled here, ``assert`` kept: ``optimize=0``) or a code object. Every
    exception the program raises is caught (``SystemExit`` too); afterwards the builtins module
    (from a snapshot taken now), the recursion limit and the trace and profile hooks are restored.
    """
    compile_, eval_, type_, base_exception = compile, eval, type, BaseException
    code_type = type(compile("", "<empty>", "exec"))
    settrace, setprofile, setrecursionlimit = sys.settrace, sys.setprofile, sys.setrecursionlimit
    recursion_limit = sys.getrecursionlimit()
    builtins_module = builtins
    builtins_snapshot = dict(builtins.__dict__)
    clear_builtins, update_builtins = builtins.__dict__.clear, builtins.__dict__.update

    def run(source: object, filename: str, namespace: dict,
            evaluate: bool = False) -> tuple[object, BaseException | None]:
        """Run ``source`` in ``namespace``, then undo what it may have rebound."""
        compiled = type_(source) is code_type
        if not compiled:  # a test or test_setup_code runs with the real builtins
            namespace["__builtins__"] = builtins_module
        value = failure = None
        try:
            code = source if compiled else compile_(source, filename, "eval" if evaluate else "exec",
                                                    dont_inherit=True, optimize=0)
            value = eval_(code, namespace)
        except base_exception as exc:
            failure = exc
        settrace(None)
        setprofile(None)
        clear_builtins()
        update_builtins(builtins_snapshot)
        setrecursionlimit(recursion_limit)
        return value, failure

    return run


def _make_steps(send: Callable[..., None], send_value: Callable[[int, bytes], None], report: Callable[..., None],
                run: Callable[..., tuple], encode: Callable[[object], bytes]) -> tuple[Callable[..., object], ...]:
    """``run_code``, ``run_setup`` (False once the stage failed, reported) and ``run_checks``."""
    compile_, str_, enumerate_ = compile, str, enumerate
    compile_errors = (SyntaxError, ValueError, RecursionError, MemoryError)
    unsupported_value, encode_errors = UnsupportedValue, (MemoryError, RecursionError)
    stage_kind, stage_code, stage_setup, syntax_error = STAGE, STAGE_CODE, STAGE_SETUP, SYNTAX_ERROR
    test_kind, ok, check_value = TEST, OK, CHECK_VALUE
    assertion_failed, max_message = ASSERTION_FAILED, MAX_MESSAGE_CHARS

    def run_code(code: str, namespace: dict) -> bool:
        """Compile the program (``assert`` kept) and run it in ``namespace``."""
        try:
            compiled = compile_(code, "<solution>", "exec", dont_inherit=True, optimize=0)
        except compile_errors as exc:
            report(stage_kind, stage_code, exc, syntax_error)
            return False
        failure = run(compiled, "<solution>", namespace)[1]
        if failure is not None:
            namespace.clear()  # frees what a memory bomb holds, so reporting can allocate
            report(stage_kind, stage_code, failure)
        return failure is None

    def run_setup(setup_code: str, namespace: dict) -> bool:
        """Run ``test_setup_code``, when there is any, in the program's namespace."""
        if not setup_code.strip():
            return True
        failure = run(setup_code, "<test_setup_code>", namespace)[1]
        if failure is not None:
            report(stage_kind, stage_setup, failure)
        return failure is None

    def run_check(index: int, kind: str, source: str, namespace: dict) -> bool:
        """Run check ``index``, send its record(s); False if it raised (its value or exception is freed on return)."""
        value, failure = run(source, f"<test {index}>", namespace, kind == check_value)
        if failure is not None:
            report(test_kind, index, failure)
            return False
        if kind != check_value:
            send(test_kind, index, ok)
            return True
        try:
            payload = encode(value)
        except unsupported_value as exc:  # the runner's own exception: its text is safe to read
            send(test_kind, index, assertion_failed, str_(exc)[:max_message].encode("utf-8", "replace").hex())
        except encode_errors as exc:
            report(test_kind, index, exc)
        else:
            value = None  # the program's object is not needed to send its encoding
            send_value(index, payload)
        return True

    def run_checks(checks: list, namespace: dict, legacy: bool) -> None:
        """Run the checks in order; under ``legacy`` the first one that raised ends the run."""
        for index, (kind, source) in enumerate_(checks):
            if not run_check(index, kind, source, namespace) and legacy:
                return

    return run_code, run_setup, run_checks


def _make_encoder(max_bytes: int, max_depth: int) -> Callable[[object], bytes]:
    """``encode(value)``: the plain-data bytes, or :class:`UnsupportedValue` (not plain data, too large or too deep).

    Bound to references taken now, before any program runs: neither it nor any step it calls
    names a global or builtin (a test checks their code).
    """
    walk = _make_walker(max_bytes, max_depth)
    len_, join, unsupported = len, bytes.join, UnsupportedValue

    def encode(value: object) -> bytes:
        out: list[bytes] = []
        size = [0]

        def add(chunk: bytes) -> None:
            size[0] += len_(chunk)
            if size[0] > max_bytes:
                raise unsupported(f"the value is larger than {max_bytes} bytes as plain data")
            out.append(chunk)

        walk(value, 0, add)
        return join(b"", out)

    return encode


def _make_walker(max_bytes: int, max_depth: int) -> Callable[[object, int, Add], None]:
    """``walk(v, depth, add)``: ``v``'s encoding through ``add``, by its exact type or builtin base."""
    type_, issubclass_, none_type, bool_, dict_ = type, issubclass, type(None), bool, dict
    dict_len, dict_items, str_str, type_name = dict.__len__, dict.items, str.__str__, type.__dict__["__name__"].__get__
    none, true, false, tag_dict, end = TAG_NONE, TAG_TRUE, TAG_FALSE, TAG_DICT, END
    unsupported, base_exception = UnsupportedValue, BaseException
    scalar, number = _make_scalar_encoder(max_bytes), _make_number()
    sequences = ((list, TAG_LIST, list.__len__, list.__iter__), (tuple, TAG_TUPLE, tuple.__len__, tuple.__iter__),
                 (set, TAG_SET, set.__len__, set.__iter__),
                 (frozenset, TAG_FROZENSET, frozenset.__len__, frozenset.__iter__))

    def name_of(kind: type) -> str:
        """The type's own ``__name__`` (never a metaclass's override), or ``?``."""
        try:
            return str_str(type_name(kind))
        except base_exception:
            return "?"

    def walk(v: object, depth: int, add: Add) -> None:
        """Encode ``v``, nested ``depth`` containers deep."""
        if depth > max_depth:
            raise unsupported(f"the value is nested deeper than {max_depth} levels")
        kind = type_(v)
        if kind is none_type or kind is bool_:
            add(none if v is None else true if v else false)
            return
        encoded = scalar(v, kind)
        if encoded is not None:
            add(encoded)
            return
        for base, tag, length, iterate in sequences:
            if issubclass_(kind, base):
                add(tag + number(length(v)) + end)
                for item in iterate(v):
                    walk(item, depth + 1, add)
                return
        if not issubclass_(kind, dict_):
            raise unsupported(
                f"returned an object of type {name_of(kind)}; only None, bool, int, float, complex, str, "
                "bytes, list, tuple, dict, set and frozenset values (or subclasses of them) can be compared"
            )
        add(tag_dict + number(dict_len(v)) + end)
        for key, item in dict_items(v):
            walk(key, depth + 1, add)
            walk(item, depth + 1, add)

    return walk


def _make_number() -> Callable[[int], bytes]:
    """``number(n)``: ``n`` in lowercase hex, as ASCII bytes."""
    int_format, str_encode = int.__format__, str.encode

    def number(n: int) -> bytes:
        return str_encode(int_format(n, "x"), "ascii")

    return number


def _make_scalar_encoder(max_bytes: int) -> Callable[[object, type], bytes | None]:
    """``scalar(v, kind)``: the encoding of an int, float, complex, str or bytes ``v``; None for other kinds."""
    issubclass_, len_, int_, float_, complex_, str_, bytes_ = issubclass, len, int, float, complex, str, bytes
    int_index, bit_length, float_hex, as_complex = int.__index__, int.bit_length, float.hex, complex.__complex__
    str_str, str_encode, as_bytes, number = str.__str__, str.encode, bytes.__bytes__, _make_number()
    tag_int, tag_float, tag_complex, tag_str, tag_bytes = TAG_INT, TAG_FLOAT, TAG_COMPLEX, TAG_STR, TAG_BYTES
    end, length_end, complex_sep, unsupported = END, LENGTH_END, COMPLEX_SEP, UnsupportedValue
    too_large = f"the value is larger than {max_bytes} bytes as plain data"

    def hex_float(x: float) -> bytes:
        return str_encode(float_hex(x), "ascii")

    def scalar(v: object, kind: type) -> bytes | None:
        """``v`` read through its builtin base's own methods (exact: hex ints and floats)."""
        if issubclass_(kind, int_):
            n = int_index(v)
            if bit_length(n) > 4 * max_bytes:
                raise unsupported(too_large)
            return tag_int + number(n) + end
        if issubclass_(kind, float_):
            return tag_float + hex_float(v) + end
        if issubclass_(kind, complex_):
            c = as_complex(v)
            return tag_complex + hex_float(c.real) + complex_sep + hex_float(c.imag) + end
        if issubclass_(kind, str_):
            s = str_str(v)
            if len_(s) > max_bytes:
                raise unsupported(too_large)
            data, tag = str_encode(s, "utf-8", "surrogatepass"), tag_str
        elif issubclass_(kind, bytes_):
            data, tag = as_bytes(v), tag_bytes
        else:
            return None
        if len_(data) > max_bytes:
            raise unsupported(too_large)
        return tag + number(len_(data)) + length_end + data

    return scalar


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


def parse_records(data: bytes, nonce: str) -> dict:
    """Read the result channel (launcher side): the records with ``nonce`` of the process that sent ``ready``.

    Returns:
        ``{"ready": bool, "stage": (stage, error_type, message) | None, "tests": {index:
        (error_type | "ok", message)}, "values": {index: bytes}, "done": n_tests | None}``; the
        first record per test wins (a test has a ``tests`` or a ``values`` entry).
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
            if kind == READY:
                sender = pid
                out["ready"] = True
            continue
        if pid != sender or out["done"] is not None:
            continue
        try:
            if kind == STAGE:
                out["stage"] = out["stage"] or (fields[0], fields[1], _unhex(fields[2]))
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
