"""The daemon's local control socket: ``evse-gatekeeper status``, ``limit`` and ``control``.

Owns a unix stream socket (mode 0660: the service's group is the operator) and its one-line
protocol: the client sends one request, the server answers one line of JSON (the answer, or
``{"error": ...}``) and closes. Requests: ``status`` (the snapshot) and ``limit <amps>`` /
``limit default`` (the charging current offered by PWM, lowered at run time by the site
owner or a load manager; ``0`` pauses charging), and ``function <json table>`` (an IEEE 1547
function put in effect at run time, as one ``[[site.functions]]`` table: every running
session gets a superseding DERControl). Nothing else sent here changes anything: the relays,
the J3072 gate and the records are out of its reach, a limit can only lower the offer below
the configured circuit rating, and a function goes through the config's own checks. It holds
the blocking client (``request``, ``query``) and the readable rendering of a snapshot
(``render``); the daemon passes the callables that build the snapshot and apply a change.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.errors import ConfigError, GatekeeperError
from firmware.logs import log_event
from firmware.meter.report import render_meter

if TYPE_CHECKING:
    import asyncio  # the server's types; `status` and `limit` (the clients) start without it

logger = logging.getLogger(__name__)

REQUEST = "status"
LIMIT = "limit"
LIMIT_DEFAULT = "default"
FUNCTION = "function"
MAX_REQUEST_BYTES = 1024  # a 10-point curve as JSON fits
REQUEST_TIMEOUT_S = 2.0
MAX_REPLY_BYTES = 1 << 20
SOCKET_MODE = 0o660
DIR_MODE = 0o750
PROBE_TIMEOUT_S = 0.5


class ControlError(GatekeeperError):
    """Raised by ``query`` when the daemon cannot be asked: no socket (not running), refused,
    no answer in time, or an answer that is not a JSON object or is an error."""


class RequestRefused(GatekeeperError):
    """Raised by the daemon's callables for a limit or function it will not apply; one line."""


# ``None`` asks for the configured default; the answer is what is now in force.
SetLimit = Callable[[float | None], Awaitable[dict[str, Any]]]
# one [[site.functions]] table in; what changed out (or RequestRefused with the reason)
SetFunction = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    """The asyncio unix server; ``start`` binds and listens, ``stop`` closes and unlinks."""

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], dict[str, Any]],
        set_limit: SetLimit | None = None,
        set_function: SetFunction | None = None,
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self._set_limit = set_limit
        self._set_function = set_function
        self._server: asyncio.Server | None = None
        self._inode: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we made
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen at ``path``; ConfigError when it cannot (not a socket, in use, bind fails)."""
        import asyncio

        sock = self._bind()
        try:
            self._server = await asyncio.start_unix_server(
                self._handle, sock=sock, limit=MAX_REQUEST_BYTES
            )
        except OSError as err:
            sock.close()
            self._unlink()
            raise self._cannot_listen(err) from err
        log_event(logger, "control.listening", path=self.path)

    async def stop(self) -> None:
        """Close the server and every open connection, then remove the socket file."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._writers):
                writer.close()
            await server.wait_closed()
        self._unlink()

    def _bind(self) -> socket.socket:
        self._refuse_existing()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            # bind() creates the file with the process umask's mode, and os.umask is
            # process-wide (other threads may create files meanwhile), so bind inside a
            # fresh 0700 directory, chmod there, then rename into place: the file is never
            # reachable by anyone else with a wider mode, and rename() atomically replaces a
            # stale socket left by a crash.
            private = Path(tempfile.mkdtemp(prefix=".", dir=self.path.parent))
            try:
                staged = private / "s"
                sock.bind(str(staged))
                os.chmod(staged, SOCKET_MODE)
                os.rename(staged, self.path)
                made = os.stat(self.path)
                self._inode = (made.st_dev, made.st_ino)
            finally:
                shutil.rmtree(private, ignore_errors=True)
        except OSError as err:
            sock.close()
            raise self._cannot_listen(err) from err
        return sock

    def _refuse_existing(self) -> None:
        try:
            found = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as err:
            raise self._cannot_listen(err) from err
        if not stat.S_ISSOCK(found.st_mode):
            raise ConfigError([f"control.socket: {self.path} exists and is not a socket"])
        if _answers(self.path):
            # replacing it would silently cut a running daemon off from its operators
            raise ConfigError([f"control.socket: {self.path}: another daemon is listening"])

    def _cannot_listen(self, err: OSError) -> ConfigError:
        reason = err.strerror or str(err)
        return ConfigError([f"control.socket: cannot listen on {self.path}: {reason}"])

    def _unlink(self) -> None:
        """Remove the socket file if it is still ours (not a newer daemon's)."""
        inode, self._inode = self._inode, None
        if inode is None:
            return
        try:
            found = os.lstat(self.path)
            if (found.st_dev, found.st_ino) == inode:
                os.unlink(self.path)
        except OSError:
            pass  # already gone, or not ours to remove

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio

        self._writers.add(writer)
        try:
            reply = await self._reply(reader)
            writer.write(reply)
            # a timeout block, not wait_for(writer.drain()): that makes the drain coroutine
            # before it starts, and a handler cancelled at shutdown leaves it never awaited
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await writer.drain()
        except (OSError, TimeoutError) as err:
            _refused(f"reply not delivered: {type(err).__name__}")
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _reply(self, reader: asyncio.StreamReader) -> bytes:
        import asyncio

        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), REQUEST_TIMEOUT_S)
        except TimeoutError:
            return _error(f"no request within {REQUEST_TIMEOUT_S:g} s")
        except asyncio.LimitOverrunError:
            return _error(f"request longer than {MAX_REQUEST_BYTES} bytes")
        except asyncio.IncompleteReadError:
            return _error("request not terminated by a newline")
        if len(line) > MAX_REQUEST_BYTES:
            return _error(f"request longer than {MAX_REQUEST_BYTES} bytes")
        request = line.decode("utf-8", errors="replace").strip()
        word, _, argument = request.partition(" ")
        if word == LIMIT and self._set_limit is not None:
            return await self._limit(argument.strip())
        if word == FUNCTION and self._set_function is not None:
            return self._function(argument.strip())
        if request != REQUEST:
            return _error(f"unknown request: {request[:60]!r}")  # repr: no raw client bytes in logs
        try:
            snapshot = self._snapshot()
            return (json.dumps(snapshot, sort_keys=True) + "\n").encode()
        except Exception as err:  # a failing snapshot must not take the socket (or daemon) down
            log_event(logger, "control.snapshot_failed", logging.ERROR, error=repr(err))
            return (json.dumps({"error": f"snapshot failed: {err}"}) + "\n").encode()

    async def _limit(self, argument: str) -> bytes:
        assert self._set_limit is not None
        try:
            amps = None if argument == LIMIT_DEFAULT else float(argument)
        except ValueError:
            return _error(f"limit: expected amps or {LIMIT_DEFAULT!r}, got {argument[:40]!r}")
        if amps is not None and not math.isfinite(amps):
            return _error(f"limit: expected a finite number of amps, got {argument[:40]!r}")
        try:
            answer = await self._set_limit(amps)
        except RequestRefused as err:
            return _error(f"limit: {err}")
        return (json.dumps(answer, sort_keys=True) + "\n").encode()

    def _function(self, argument: str) -> bytes:
        assert self._set_function is not None
        try:
            table = json.loads(argument)
        except json.JSONDecodeError as err:
            return _error(f"function: not a JSON object: {err.msg}")
        if not isinstance(table, dict):
            return _error("function: not a JSON object")
        try:
            answer = self._set_function(table)
        except RequestRefused as err:
            return _error(f"function: {err}")
        return (json.dumps(answer, sort_keys=True) + "\n").encode()


def _refused(reason: str) -> None:
    log_event(logger, "control.refused", logging.WARNING, reason=reason)


def _error(reason: str) -> bytes:
    _refused(reason)
    return (json.dumps({"error": reason}) + "\n").encode()


def _answers(path: Path) -> bool:
    """Whether a live server accepts connections at ``path`` (else the socket is stale)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT_S)
        try:
            probe.connect(str(path))
        except TimeoutError:
            return True  # a full backlog: someone is listening
        except OSError:
            return False
        return True


def query(path: Path, timeout_s: float = 2.0) -> dict[str, Any]:
    """Ask the daemon at ``path`` for its status; ControlError with a one-line reason."""
    return request(path, REQUEST, timeout_s)


def set_limit(path: Path, amps: float | None, timeout_s: float = 2.0) -> dict[str, Any]:
    """Ask the daemon at ``path`` to offer at most ``amps`` (``None``: the configured rating)."""
    argument = LIMIT_DEFAULT if amps is None else f"{amps:g}"
    return request(path, f"{LIMIT} {argument}", timeout_s)


def set_function(path: Path, table: dict[str, Any], timeout_s: float = 2.0) -> dict[str, Any]:
    """Ask the daemon at ``path`` to put one function (a ``[[site.functions]]`` table) in
    effect."""
    return request(path, f"{FUNCTION} {json.dumps(table, separators=(',', ':'))}", timeout_s)


def request(path: Path, line: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """Send one request line, return the JSON answer; ControlError with a one-line reason."""
    deadline = time.monotonic() + timeout_s
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall(f"{line}\n".encode())
            data = _read_line(sock, deadline)
    except FileNotFoundError:
        raise ControlError(f"{path}: no such socket (is the daemon running?)") from None
    except ConnectionRefusedError:
        raise ControlError(f"{path}: connection refused (is the daemon running?)") from None
    except TimeoutError:
        raise ControlError(f"{path}: no answer within {timeout_s:g} s") from None
    except OSError as err:
        raise ControlError(f"{path}: {err.strerror or err}") from None
    try:
        answer = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError(f"{path}: the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError(f"{path}: the answer is not a JSON object")
    if "error" in answer:
        raise ControlError(f"the daemon refused: {answer['error']}")
    return answer


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            if not data:
                raise ControlError("the daemon closed the connection without an answer")
            break
        data += chunk
        if len(data) > MAX_REPLY_BYTES:
            raise ControlError(f"the answer is longer than {MAX_REPLY_BYTES} bytes")
    return data.split(b"\n", 1)[0]


def render(snapshot: dict[str, Any]) -> str:
    """The snapshot as readable lines; a missing key or a null shows as ``-``."""
    relays = _table(snapshot, "relays")
    plc = _table(snapshot, "plc")
    lines = [
        f"firmware:      {_text(snapshot.get('firmware'))}",
        f"pilot:         {_text(snapshot.get('pilot'))}",
        f"charger:       {_text(snapshot.get('charger'))}",
        f"relays:        main {_text(relays.get('main'))}, "
        f"discharge {_text(relays.get('discharge'))}",
        f"plc:           link {_text(plc.get('link'))}, ev_mac {_text(plc.get('ev_mac'))}",
        *_session_lines(snapshot.get("session")),
        *_authorization_lines(_table(snapshot, "authorization")),
        *_function_lines(snapshot.get("functions")),
        *_set_by_lines(snapshot.get("set_by")),
        *_ocpp_lines(snapshot.get("ocpp")),
        *_approvals_lines(snapshot.get("approvals")),
        *_clock_lines(snapshot.get("clock")),
        f"faults:        {_faults(snapshot.get('faults'))}",
        render_current(_table(snapshot, "current")),
        *(
            render_meter(snapshot.get("meter"))
            or [f"meter:         {_watts(snapshot.get('meter_w'))}"]
        ),
        *_process_lines(_table(snapshot, "processes")),
    ]
    return "\n".join(lines)


def _process_lines(processes: dict[str, Any]) -> list[str]:
    """Both processes: the gatekeeper (this answer) and the safety process's last report."""
    gatekeeper = processes.get("gatekeeper")
    safety = processes.get("safety")
    gatekeeper = gatekeeper if isinstance(gatekeeper, dict) else {}
    safety = safety if isinstance(safety, dict) else {}
    sampler = safety.get("sampler")
    sampler = sampler if isinstance(sampler, dict) else {}
    state = "running" if safety.get("alive") else f"lost ({_text(safety.get('lost'))})"
    flag = safety.get("realtime")
    realtime = "-" if flag is None else "real time" if flag is True else "NOT real time"
    return [
        f"processes:     gatekeeper pid {_text(gatekeeper.get('pid'))}",
        f"               safety pid {_text(safety.get('pid'))}, {state}, {realtime}",
        f"               sampler {_text(sampler.get('ticks'))} ticks, "
        f"{_text(sampler.get('overruns'))} overruns, "
        f"at most {_text(sampler.get('max_late_ms'))} ms late",
    ]


def _session_lines(session: Any) -> list[str]:
    if not isinstance(session, dict):
        return ["session:       none"]
    return [
        f"session:       {_text(session.get('id'))}, "
        f"plugged in {_text(session.get('plugged_in_at'))}",
        f"               lfdi {_text(session.get('lfdi'))}",
        f"               ism {_text(session.get('ism'))}, vin {_text(session.get('vin'))}",
    ]


def _authorization_lines(auth: dict[str, Any]) -> list[str]:
    limit = auth.get("limit_w")
    limit_text = "no limit" if limit is None else f"limit {_watts(limit)}"
    lines = [f"authorization: {_text(auth.get('state'))}, {limit_text}"]
    if auth.get("basis"):
        lines.append(f"               checked: {_text(auth.get('basis'))}")
    reasons = auth.get("reasons")
    if isinstance(reasons, list):
        lines += [f"               - {_text(reason)}" for reason in reasons]
    return lines


def _clock_lines(clock: Any) -> list[str]:
    """Whether the wall clock can be trusted (docs/time.md), and its last step."""
    if not isinstance(clock, dict):
        return []
    synchronized, boot = clock.get("synchronized"), clock.get("synchronized_since_boot")
    now = "-" if synchronized is None else "synchronized" if synchronized else "NOT synchronized"
    since = "since boot: " + ("-" if boot is None else "yes" if boot else "NO")
    lines = [f"clock:         {now} ({_text(clock.get('source'))}), {since}, "
             f"Time.quality {_text(clock.get('time_quality'))}"]  # fmt: skip
    step = clock.get("last_step")
    if isinstance(step, dict):
        lines.append(f"               {_text(clock.get('steps'))} steps, last "
                     f"{_text(step.get('direction'))} {_text(step.get('size_s'))} s at "
                     f"{_text(step.get('at'))}")  # fmt: skip
    return lines


def _function_lines(functions: Any) -> list[str]:
    if not isinstance(functions, list):
        return []
    return ["functions:     " + (_text(functions[0]) if functions else "none")] + [
        f"               {_text(f)}" for f in functions[1:]
    ]


def _set_by_lines(set_by: Any) -> list[str]:
    """Who set the controls not from the config (the site owner at run time, a CSMS)."""
    if not isinstance(set_by, dict):
        return []
    return [f"set by:        {_text(function)}: {_text(who)}"
            for function, who in set_by.items() if who != "site owner (config)"]  # fmt: skip


def _ocpp_lines(ocpp: Any) -> list[str]:
    if not isinstance(ocpp, dict):
        return []
    state = "online" if ocpp.get("online") else "offline"
    line = (f"ocpp:          {state} as {_text(ocpp.get('station_id'))} (OCPP "
            f"{_text(ocpp.get('version'))}), transaction {_text(ocpp.get('transaction_id'))}, "
            f"{_text(ocpp.get('queued'))} event(s) queued")  # fmt: skip
    error = ocpp.get("last_error")
    return [line] + ([f"               last failure: {_text(error)}"] if error else [])


def _approvals_lines(approvals: Any) -> list[str]:
    if not isinstance(approvals, dict):
        return ["approvals:     none installed"]
    in_force = approvals.get("in_force")
    force = (
        "in force" if in_force is True else "NOT in force" if in_force is False else "in force: -"
    )
    lines = [
        f"approvals:     version {_text(approvals.get('version'))} "
        f"from {_text(approvals.get('issuer'))}, {_text(approvals.get('entries'))} entries, "
        f"{force}",
        f"               expires {_text(approvals.get('expires_at'))}",
    ]
    if approvals.get("problem") is not None:
        lines.append(f"               problem: {_text(approvals.get('problem'))}")
    if approvals.get("expiry_warning") is not None:
        lines.append(f"               WARNING: {_text(approvals.get('expiry_warning'))}")
    return lines + _refresh_lines(approvals.get("refresh"))


def _refresh_lines(refresh: Any) -> list[str]:
    """The daemon's fetches from the utility: where from, the last outcome, the next try."""
    if not isinstance(refresh, dict):
        return ["               refresh: off (no [approvals] url)"]
    last = refresh.get("last")
    if isinstance(last, dict):
        result = _text(last.get("result")).replace("_", " ")
        if last.get("version") is not None:
            result += f" version {_text(last.get('version'))}"
        if last.get("reason") is not None:
            result += f": {_text(last.get('reason'))}"
        done = f"last fetch {_text(last.get('at'))}: {result}"
    else:
        done = "last fetch: none yet"
    failures = refresh.get("failures")
    plural = "s" if failures != 1 else ""
    retry = f" (a retry after {failures} failure{plural} in a row)" if failures else ""
    return [
        f"               refresh: {_text(refresh.get('url'))} "
        f"every {_text(refresh.get('refresh_s'))} s",
        f"               {done}",
        f"               next attempt {_text(refresh.get('next_attempt'))}{retry}",
    ]


def render_current(current: dict[str, Any]) -> str:
    """The ``current`` table of a snapshot (or a ``limit`` answer) as one line."""
    limit, rating = current.get("limit_a"), current.get("rating_a")
    text = f"current:       offer up to {_amps(limit)} of {_amps(rating)}"
    return text + (" (charging paused)" if limit == 0 else "")


def _amps(value: Any) -> str:
    return f"{value:g} A" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _table(snapshot: dict[str, Any], key: str) -> dict[str, Any]:
    value = snapshot.get(key)
    return value if isinstance(value, dict) else {}


def _faults(faults: Any) -> str:
    if faults is None:
        return "-"
    if isinstance(faults, list):
        return ", ".join(_text(fault) for fault in faults) if faults else "none"
    return _text(faults)


def _watts(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.0f} W" if isinstance(value, int) else f"{value:.1f} W"
    return _text(value)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
