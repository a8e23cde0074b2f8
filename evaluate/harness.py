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

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for the type hints only: the runner imports nothing it does not use
    from collections.abc import Callable, Iterator

    Send = Callable[..., None]  # send(*fields)
    SendValue = Callable[[int, bytes], None]  # send_value(index, payload)
    Report = Callable[..., None]  # report(kind, where, exc, error_type=None)
    RunCompiled = Callable[[object, dict], BaseException | None]
    RunSource = Callable[[str, str, bool, dict], tuple[object, BaseException | None]]
    Stage = Callable[[str, dict], bool]
    RunChecks = Callable[[list, dict, bool], None]
    Encode = Callable[[object], bytes]
    Add = Callable[[bytes], None]
    Walk = Callable[[object, int, Add], None]
    ScalarEncoder = Callable[[object, Add], None]
    ContainerEncoder = Callable[[object, int, Add, Walk], None]

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
    del job  # the nonce lives only in this frame (and the sender's closure) from here on

    # Everything used after the program starts is bound here, before it can be rebound: each
    # step is a closure over references its factory takes now, and once the program has
    # started this frame names no global or builtin (a test checks both).
    exit_now = os._exit
    done_kind = DONE
    n_tests = len(checks)
    send, send_value = _make_sender(nonce, results_fd)
    report = _make_reporter(send)
    run_compiled, run_source = _make_executors()
    run_code, run_setup = _make_stages(report, run_compiled, run_source)
    encode = _make_encoder(MAX_VALUE_BYTES, MAX_VALUE_DEPTH)
    run_checks = _make_check_runner(send, send_value, report, run_source, encode)

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
    """Resource limits, the unprivileged uid (when root), process-mode guards, then the work dir."""
    _apply_limits(limits)
    if run_as is not None and os.geteuid() == 0:
        _drop_privileges(int(run_as[0]), int(run_as[1]), workdir)
    if process_mode:
        _process_mode_guards()
    # Count the processes this uid already has, so a fork limit is per program.
    _limit_processes(int(limits["max_processes"]))
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


# The factories below run before the program does. Each binds the references its steps use
# to locals of its own, so the returned closures name no global or builtin: a program that
# rebinds builtins or this module's globals cannot change what they do or send.


def _make_sender(nonce: str, results_fd: int) -> "tuple[Send, SendValue]":
    """``send(*fields)``: one record on the result channel; ``send_value(index, payload)``: a value in pieces."""
    write, getpid, str_, len_, hex_ = os.write, os.getpid, str, len, bytes.hex
    part_kind, value_kind, piece = PART, VALUE, VALUE_PIECE_CHARS

    def send(*fields: object) -> None:
        """Write one record with a single ``os.write`` (records never interleave)."""
        # The pid is read per record: a forked copy of this runner reports under its own.
        line = " ".join([nonce, str_(getpid()), *[str_(f) for f in fields]]) + "\n"
        write(results_fd, line.encode("utf-8", "replace"))

    def send_value(index: int, payload: bytes) -> None:
        """Send an encoded value as hex: ``part`` records, then the last piece as ``value``."""
        text = hex_(payload)
        start = 0
        while len_(text) - start > piece:
            send(part_kind, index, text[start : start + piece])
            start += piece
        send(value_kind, index, text[start:])

    return send, send_value


def _make_reporter(send: "Send") -> "Report":
    """``report(kind, where, exc, error_type=None)``: a failure record with the exception's error type and text."""
    type_, str_, issubclass_ = type, str, issubclass
    base_exception, assertion_error, memory_error = BaseException, AssertionError, MemoryError
    assertion_failed, memory, runtime_error = ASSERTION_FAILED, MEMORY, RUNTIME_ERROR
    max_message = MAX_MESSAGE_CHARS

    def describe(exc: BaseException) -> str:
        """``Type: message`` cut to the record limit, as hex; never raises, whatever the exception does."""
        try:
            name = type_(exc).__name__
            text = str_(exc)
            message = f"{name}: {text}" if text else name
        except base_exception:
            message = "<exception that cannot be printed>"
        return message[:max_message].encode("utf-8", "replace").hex()

    def classify(exc: BaseException) -> str:
        """The error type of an exception the program raised."""
        kind = type_(exc)
        if issubclass_(kind, assertion_error):
            return assertion_failed
        if issubclass_(kind, memory_error):
            return memory
        return runtime_error

    def report(kind: str, where: object, exc: BaseException, error_type: str | None = None) -> None:
        """Send ``kind where error_type message``; the error type is the exception's unless given."""
        send(kind, where, classify(exc) if error_type is None else error_type, describe(exc))

    return report


def _make_executors() -> "tuple[RunCompiled, RunSource]":
    """``run_compiled(code, namespace)`` and ``run_source(source, filename, evaluate, namespace)``.

    Both catch everything the program raises (``SystemExit`` and ``KeyboardInterrupt`` too)
    and then restore what it may have rebound: the builtins module (from a snapshot taken
    now), the recursion limit and the trace and profile hooks.
    """
    compile_, exec_, eval_, base_exception = compile, exec, eval, BaseException
    settrace, setprofile, setrecursionlimit = sys.settrace, sys.setprofile, sys.setrecursionlimit
    recursion_limit = sys.getrecursionlimit()
    builtins_module = builtins
    builtins_snapshot = dict(builtins.__dict__)
    clear_builtins, update_builtins = builtins.__dict__.clear, builtins.__dict__.update

    def restore() -> None:
        """Undo what the program may have rebound before the runner uses any builtin again."""
        settrace(None)
        setprofile(None)
        clear_builtins()
        update_builtins(builtins_snapshot)
        setrecursionlimit(recursion_limit)

    def run_compiled(code: object, namespace: dict) -> BaseException | None:
        """Run the program's compiled code in ``namespace``; what it raised, else None."""
        try:
            exec_(code, namespace)
            failure = None
        except base_exception as exc:
            failure = exc
        restore()
        return failure

    def run_source(source: str, filename: str, evaluate: bool, namespace: dict) -> tuple[object, BaseException | None]:
        """Compile and evaluate (or execute) ``source`` with the real builtins: its value and what it raised."""
        namespace["__builtins__"] = builtins_module
        value = None
        try:
            if evaluate:
                value = eval_(compile_(source, filename, "eval", dont_inherit=True, optimize=0), namespace)
            else:
                exec_(compile_(source, filename, "exec", dont_inherit=True, optimize=0), namespace)
            failure = None
        except base_exception as exc:
            failure = exc
        restore()
        return value, failure

    return run_compiled, run_source


def _make_stages(report: "Report", run_compiled: "RunCompiled",
                 run_source: "RunSource") -> "tuple[Stage, Stage]":
    """``run_code(code, namespace)``, ``run_setup(setup_code, namespace)``: False once the stage failed (reported)."""
    compile_ = compile
    syntax_error, value_error, recursion_error, memory_error = SyntaxError, ValueError, RecursionError, MemoryError
    stage_kind, stage_code, stage_setup, syntax_error_type = STAGE, STAGE_CODE, STAGE_SETUP, SYNTAX_ERROR

    def run_code(code: str, namespace: dict) -> bool:
        """Compile the program (``assert`` kept: ``optimize=0``) and run it in ``namespace``."""
        try:
            compiled = compile_(code, "<solution>", "exec", dont_inherit=True, optimize=0)
        except (syntax_error, value_error, recursion_error, memory_error) as exc:
            report(stage_kind, stage_code, exc, syntax_error_type)
            return False
        failure = run_compiled(compiled, namespace)
        if failure is not None:
            namespace.clear()  # frees what a memory bomb holds, so reporting can allocate
            report(stage_kind, stage_code, failure)
            return False
        return True

    def run_setup(setup_code: str, namespace: dict) -> bool:
        """Run ``test_setup_code``, when there is any, in the program's namespace."""
        if not setup_code.strip():
            return True
        failure = run_source(setup_code, "<test_setup_code>", False, namespace)[1]
        if failure is not None:
            report(stage_kind, stage_setup, failure)
            return False
        return True

    return run_code, run_setup


def _make_check_runner(send: "Send", send_value: "SendValue", report: "Report",
                       run_source: "RunSource", encode: "Encode") -> "RunChecks":
    """``run_checks(checks, namespace, legacy)``: every check on its own, each reported (legacy stops at a failure)."""
    range_, len_, str_ = range, len, str
    unsupported_value, memory_error, recursion_error = UnsupportedValue, MemoryError, RecursionError
    test_kind, ok, check_value, assertion_failed = TEST, OK, CHECK_VALUE, ASSERTION_FAILED
    max_message = MAX_MESSAGE_CHARS

    def run_check(index: int, kind: str, source: str, namespace: dict) -> bool:
        """Run check ``index`` and send its record(s); False when it raised."""
        value, failure = run_source(source, f"<test {index}>", kind == check_value, namespace)
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
            return True
        except (memory_error, recursion_error) as exc:
            report(test_kind, index, exc)
            return True
        value = None  # the program's object is not needed to send its encoding
        send_value(index, payload)
        return True

    def run_checks(checks: list, namespace: dict, legacy: bool) -> None:
        """Run the checks in order; under ``legacy`` the first failing one ends the run."""
        for index in range_(len_(checks)):
            kind, source = checks[index]
            if not run_check(index, kind, source, namespace) and legacy:
                break

    return run_checks


def _make_encoder(max_bytes: int, max_depth: int) -> "Encode":
    """The plain-data encoder, bound to references taken now (before any program runs).

    Neither the returned function nor any step it calls uses a global or builtin name, only
    references bound when the encoder is made (hence no annotations on ``add``, made at each
    call: they would be looked up then), so a program that rebinds builtins or this module's
    globals cannot change what it sends (a test checks their code).
    """
    walk = _make_walker(max_bytes, max_depth)
    len_, bytes_join, unsupported = len, bytes.join, UnsupportedValue

    def encode(value: object) -> bytes:
        """``value`` as plain data; :class:`UnsupportedValue` when it is not, or is too large or too deep."""
        out = []
        size = [0]

        def add(chunk):
            size[0] += len_(chunk)
            if size[0] > max_bytes:
                raise unsupported(f"the value is larger than {max_bytes} bytes as plain data")
            out.append(chunk)

        walk(value, 0, add)
        return bytes_join(b"", out)

    return encode


def _make_walker(max_bytes: int, max_depth: int) -> "Walk":
    """``walk(v, depth, add)``: ``v``'s encoding through ``add``, chosen by its exact type or builtin base."""
    type_, issubclass_, bool_, none_type = type, issubclass, bool, type(None)
    none, true, false = TAG_NONE, TAG_TRUE, TAG_FALSE
    unsupported, base_exception, str_str = UnsupportedValue, BaseException, str.__str__
    type_name = type.__dict__["__name__"].__get__
    # In the order the bases are tried: int, float, complex, str, bytes, then the containers.
    scalars, containers = _scalar_encoders(max_bytes), _container_encoders()

    def name_of(kind: type) -> str:
        """The type's own ``__name__`` (never a metaclass's override), or ``?``."""
        try:
            return str_str(type_name(kind))
        except base_exception:
            return "?"

    def walk(v: object, depth: int, add: "Add") -> None:
        """Encode ``v``, nested ``depth`` containers deep."""
        if depth > max_depth:
            raise unsupported(f"the value is nested deeper than {max_depth} levels")
        kind = type_(v)
        if kind is none_type:
            add(none)
            return
        if kind is bool_:
            add(true if v else false)
            return
        for base, encode_scalar in scalars:
            if issubclass_(kind, base):
                encode_scalar(v, add)
                return
        for base, encode_items in containers:
            if issubclass_(kind, base):
                encode_items(v, depth, add, walk)
                return
        raise unsupported(
            f"returned an object of type {name_of(kind)}; only None, bool, int, float, complex, str, "
            "bytes, list, tuple, dict, set and frozenset values (or subclasses of them) can be compared"
        )

    return walk


def _scalar_encoders(max_bytes: int) -> "tuple[tuple[type, ScalarEncoder], ...]":
    """``(base, encode(v, add))`` for int, float, complex, str and bytes: ``v`` read through the base's own methods."""
    tag_int, tag_float, tag_complex, tag_str, tag_bytes = TAG_INT, TAG_FLOAT, TAG_COMPLEX, TAG_STR, TAG_BYTES
    end, length_end, complex_sep = END, LENGTH_END, COMPLEX_SEP
    int_index, int_format, int_bit_length = int.__index__, int.__format__, int.bit_length
    float_hex, complex_complex, str_str, str_encode = float.hex, complex.__complex__, str.__str__, str.encode
    bytes_bytes, len_, unsupported = bytes.__bytes__, len, UnsupportedValue

    def integer(v: int, add: "Add") -> None:
        """``i<hex>;`` (hex: ints beyond the ``str()`` digit limit survive)."""
        n = int_index(v)
        if int_bit_length(n) > 4 * max_bytes:
            raise unsupported(f"the value is larger than {max_bytes} bytes as plain data")
        add(tag_int)
        add(str_encode(int_format(n, "x"), "ascii"))
        add(end)

    def floating(v: float, add: "Add") -> None:
        """``f<float.hex()>;`` (exact)."""
        add(tag_float)
        add(str_encode(float_hex(v), "ascii"))
        add(end)

    def complex_number(v: complex, add: "Add") -> None:
        """``c<real hex>,<imaginary hex>;``."""
        c = complex_complex(v)
        add(tag_complex)
        add(str_encode(float_hex(c.real), "ascii"))
        add(complex_sep)
        add(str_encode(float_hex(c.imag), "ascii"))
        add(end)

    def sized(tag: bytes, data: bytes, add: "Add") -> None:
        """``<tag><hex length>:<data>``."""
        add(tag)
        add(str_encode(int_format(len_(data), "x"), "ascii"))
        add(length_end)
        add(data)

    def string(v: str, add: "Add") -> None:
        """UTF-8, surrogates kept."""
        s = str_str(v)
        if len_(s) > max_bytes:
            raise unsupported(f"the value is larger than {max_bytes} bytes as plain data")
        sized(tag_str, str_encode(s, "utf-8", "surrogatepass"), add)

    def raw_bytes(v: bytes, add: "Add") -> None:
        """The bytes as they are."""
        sized(tag_bytes, bytes_bytes(v), add)

    return ((int, integer), (float, floating), (complex, complex_number), (str, string), (bytes, raw_bytes))


def _container_encoders() -> "tuple[tuple[type, ContainerEncoder], ...]":
    """``(base, encode(v, depth, add, walk))`` for list, tuple, set, frozenset, dict (read by the base's methods)."""
    int_format, str_encode, end, tag_dict = int.__format__, str.encode, END, TAG_DICT
    dict_items, dict_len = dict.items, dict.__len__

    def mapping(v: dict, depth: int, add: "Add", walk: "Walk") -> None:
        """``d<hex count>;`` then key, value, key, value..."""
        add(tag_dict)
        add(str_encode(int_format(dict_len(v), "x"), "ascii"))
        add(end)
        for key, item in dict_items(v):
            walk(key, depth + 1, add)
            walk(item, depth + 1, add)

    return (
        (list, _items_encoder(TAG_LIST, list.__iter__, list.__len__)),
        (tuple, _items_encoder(TAG_TUPLE, tuple.__iter__, tuple.__len__)),
        (set, _items_encoder(TAG_SET, set.__iter__, set.__len__)),
        (frozenset, _items_encoder(TAG_FROZENSET, frozenset.__iter__, frozenset.__len__)),
        (dict, mapping),
    )


def _items_encoder(tag: bytes, iterate: "Callable[[object], Iterator[object]]",
                   length: "Callable[[object], int]") -> "ContainerEncoder":
    """The encoder of one sequence or set type: ``<tag><hex count>;`` then the items."""
    int_format, str_encode, end = int.__format__, str.encode, END

    def encode_items(v: object, depth: int, add: "Add", walk: "Walk") -> None:
        """Encode the items ``depth + 1`` deep."""
        add(tag)
        add(str_encode(int_format(length(v), "x"), "ascii"))
        add(end)
        for item in iterate(v):
            walk(item, depth + 1, add)

    return encode_items


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
