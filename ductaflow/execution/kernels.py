"""Kernels for flows: quiet, quick to become ready and to stop, and warm when possible.

Starting a kernel costs about half a second: a Python process imports IPython,
ipykernel and zmq, then binds its sockets. A *kernel fork server* pays the imports
once (and any modules the project names, such as pandas) and keeps initialized
kernels ready, each a fresh forked process used by one flow only. jupyter_client
reaches it through its own extension point, a kernel provisioner
(``WarmProvisioner``), so papermill and nbclient run the notebook as usual.

The fork server runs on Linux only (fork after importing IPython is not safe on
macOS, and Windows has no fork); everywhere else, and with ``--no-warm``, kernels
start the normal way. All kernels use IPC sockets on POSIX: over TCP, ipykernel 7
warns about unencrypted connections for every kernel.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import gc
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty
from typing import Any

from ductaflow import environment
from ductaflow.execution import processes

#: IPython's history in memory: batch kernels have no use for a shared history.sqlite,
#: and many writing it at once only contend for its lock.
KERNEL_ARGUMENTS = ("--HistoryManager.hist_file=:memory:",)


def warm_supported() -> bool:
    """Warm kernels need ``fork``: Linux and macOS, not Windows."""
    return sys.platform.startswith("linux")


# --------------------------------------------------------------------- the manager


def kernel_manager_class(socket_dir: str | None, kernel_log: Path,
                         project_root: Path | None = None) -> type:
    """A kernel manager that keeps the kernel machinery's noise off the terminal.

    The kernel process's own stdout and stderr (not the flow's prints, which arrive
    as messages) go to ``kernel_log``. When a kernel fork server is announced in the
    environment, kernels come from it. The kernel learns the project root
    (``project_on_path``).
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import DottedObjectName, default

    class QuietKernelManager(AsyncKernelManager):
        client_class = DottedObjectName("ductaflow.execution.kernels.FastKernelClient")

        @default("client_factory")
        def _fast_client(self) -> type:
            # AsyncKernelManager gives client_factory a fixed default, so setting
            # client_class alone leaves jupyter_client's own (slow to get ready) client.
            return _fast_client_class()

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if socket_dir is not None:
                self.transport = "ipc"
                self.ip = str(Path(socket_dir) / "k")
            self._process: Any = None

        async def start_kernel(self, **kw: Any) -> None:
            server = os.environ.get(environment.KERNEL_SERVER)
            if server and self.provisioner is None:
                self.kernel_id = self.kernel_id or secrets.token_hex(16)
                self.provisioner = WarmProvisioner(
                    kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self,
                    server=server, kernel_log=str(kernel_log))
            # The kernel ends with this process, even one that dies while it starts.
            kw["env"] = {**(kw.get("env") or os.environ),
                         environment.PARENT_PID: str(os.getpid())}
            if project_root is not None:
                kw["env"][environment.PROJECT_ROOT] = str(project_root)
            sink = open(kernel_log, "ab")  # noqa: SIM115 - the kernel process holds it
            kw.setdefault("stdout", sink)
            kw.setdefault("stderr", sink)
            try:
                await super().start_kernel(**kw)
            finally:
                sink.close()
            self._process = getattr(self.provisioner, "process", None)
            if self._process is not None:
                processes.register(self._process)

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            # The same kernel, started through a launcher that ends it, and what its
            # flow started, when the process that asked for it dies.
            cmd = super().format_kernel_cmd(extra_arguments)
            if "ipykernel_launcher" not in cmd:
                return cmd  # not an IPython kernel: leave its command alone
            # jupyter_client may format the command more than once: add ours once.
            return ["ductaflow.execution.kernel_main" if part == "ipykernel_launcher" else part
                    for part in cmd] + [a for a in KERNEL_ARGUMENTS if a not in cmd]

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            try:
                await super().shutdown_kernel(now=now, restart=restart)
            finally:
                processes.unregister(self._process)
                if self._process is not None:  # what the flow started ends with it
                    processes.kill_group(self._process.pid)

        async def _async_wait(self, pollinterval: float = 0.1) -> None:
            # jupyter_client polls a stopping kernel every 0.1 s; its exit is what we
            # wait for (it flushes the flow's files), so look more often.
            await super()._async_wait(pollinterval=0.005)

    return QuietKernelManager


@functools.cache
def _fast_client_class() -> type:
    from jupyter_client.asynchronous import AsyncKernelClient

    class FastKernelClient(AsyncKernelClient):
        """Ready as soon as the kernel answers and IOPub is proven connected.

        jupyter_client then idles 0.2 s flushing IOPub; stale messages are harmless
        (nbclient matches outputs to its own requests), a lost first output is not,
        so wait for the first IOPub message (ipykernel 7 greets each subscriber)
        and no longer.
        """

        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout is not None else 60)
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply":
                    if await self._iopub_connected(deadline):
                        self._handle_kernel_info_reply(reply)
                        return
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")

        async def _iopub_connected(self, deadline: float) -> bool:
            try:
                await self.iopub_channel.get_msg(timeout=max(0.05, min(1.0, deadline -
                                                                         time.monotonic())))
            except Empty:
                return False
            while True:
                try:
                    await self.iopub_channel.get_msg(timeout=0)
                except Empty:
                    return True

    return FastKernelClient


def __getattr__(name: str) -> Any:
    # jupyter_client imports the client class by name; build it on first use so that
    # importing this module stays cheap.
    if name == "FastKernelClient":
        value = _fast_client_class()
        globals()[name] = value
        return value
    raise AttributeError(name)


# ---------------------------------------------------------------- the provisioner


def _provisioner_base() -> type:
    from jupyter_client.provisioning import KernelProvisionerBase

    return KernelProvisionerBase


class _WarmProcess:
    """A forked kernel seen from the worker: a pid, not a child of ours."""

    def __init__(self, pid: int):
        self.pid = pid

    def poll(self) -> int | None:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return 0
        except PermissionError:
            return None
        return None

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@functools.cache
def _make_warm_provisioner() -> type:
    from traitlets import Unicode

    class WarmProvisioner(_provisioner_base()):  # type: ignore[misc]
        """Takes a ready kernel from the fork server instead of starting one."""

        server = Unicode()
        kernel_log = Unicode()
        process: Any = None

        @property
        def has_process(self) -> bool:
            return self.process is not None

        async def poll(self) -> int | None:
            return None if self.process is None else self.process.poll()

        async def wait(self) -> int | None:
            while self.process is not None and self.process.poll() is None:
                await asyncio.sleep(0.005)
            return 0

        async def send_signal(self, signum: int) -> None:
            if self.process is not None:
                try:
                    os.kill(self.process.pid, signum)
                except ProcessLookupError:
                    pass

        async def kill(self, restart: bool = False) -> None:
            if self.process is not None:
                self.process.kill()

        async def terminate(self, restart: bool = False) -> None:
            await self.send_signal(signal.SIGTERM)

        async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
            kwargs = await super().pre_launch(**kwargs)
            kwargs["cmd"] = []
            return kwargs

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
            request = {"cwd": str(kwargs.get("cwd") or os.getcwd()),
                       "env": dict(kwargs.get("env") or os.environ),
                       "parent": os.getpid(), "log": self.kernel_log}
            reply = await asyncio.get_running_loop().run_in_executor(
                None, ask_server, self.server, request)
            self.process = _WarmProcess(reply["pid"])
            info = dict(reply["connection"])
            info["key"] = info["key"].encode()
            self.connection_info = info
            return info

        async def cleanup(self, restart: bool = False) -> None:
            pass

        def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
            return recommended

    return WarmProvisioner


def WarmProvisioner(**kwargs: Any) -> Any:  # noqa: N802 - stands for the class
    return _make_warm_provisioner()(**kwargs)


def ask_server(address: str, request: dict, wait_s: float = 60.0) -> dict:
    """One request to the fork server: a ready kernel for this cwd and environment.

    The server may still be importing when the first flow starts: wait for it.
    """
    deadline = time.monotonic() + wait_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        while True:
            try:
                conn.connect(address)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kernel fork server at {address} did not start") from None
                time.sleep(0.02)
        conn.sendall(json.dumps(request).encode() + b"\n")
        reply = _read_line(conn)
    if "error" in reply:
        raise RuntimeError(f"kernel fork server: {reply['error']}")
    return reply


def _read_line(conn: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data.decode() or "{}")


# ---------------------------------------------------------------- the fork server


class KernelServer:
    """Starts and stops a fork server process for one conduct."""

    def __init__(self, preload: tuple[str, ...] = (), ready: int = 1):
        import subprocess

        self.folder = tempfile.mkdtemp(prefix="dfk-", dir="/tmp")
        self.address = str(Path(self.folder) / "server")
        command = [sys.executable, "-m", "ductaflow.execution.kernels", self.address, str(ready),
                   ",".join(preload)]
        env = {**os.environ, environment.PARENT_PID: str(os.getpid())}
        with processes.interrupt_held():
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, env=env)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)


#: What ``IPKernelApp.initialize`` imports in each kernel besides the modules above
#: (the shell's debugger, history, completer): 30 ms of every kernel's start, once here.
_INITIALIZE_IMPORTS = ("IPython.core.completerlib", "IPython.core.debugger",
                       "IPython.core.oinspect", "IPython.extensions.storemagic",
                       "IPython.utils.wildcard", "faulthandler", "sqlite3",
                       "tornado.platform.asyncio")


def serve(address: str, ready: int, preload: list[str]) -> None:
    """The fork server's main loop: keep ``ready`` kernels initialized, hand them out."""
    processes.ignore_interrupt()  # started with SIGINT held: the conductor decides
    # The imports every kernel would pay for, its initialize's included (ipykernel's
    # debugger, loaded by name there, imports debugpy: 0.2 s per kernel).
    import ipykernel.debugger  # noqa: F401
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import ipykernel.zmqshell  # noqa: F401
    import IPython  # noqa: F401

    for name in (*_INITIALIZE_IMPORTS, *preload):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module only costs speed
            pass
    gc.freeze()  # shared with every kernel forked from here, never collected there
    folder = Path(address).parent
    processes.watch_parent(cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped by the OS
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(16)
    pool = [_prefork(folder, n) for n in range(ready)]
    counter = ready
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                request = _read_line(conn)
                kernel = pool.pop(0)
                os.write(kernel["go"], json.dumps(request).encode() + b"\n")
                os.close(kernel["go"])
                reply = {"pid": kernel["pid"], "connection": kernel["connection"]}
            except Exception as exc:  # noqa: BLE001 - tell the worker, keep serving
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            conn.sendall(json.dumps(reply).encode() + b"\n")
        pool.append(_prefork(folder, counter))
        counter += 1


def _prefork(folder: Path, n: int) -> dict:
    """Fork one kernel that initializes now and starts when told where to run."""
    connection = {
        "transport": "ipc", "ip": str(folder / f"k{n}"), "shell_port": 1, "iopub_port": 2,
        "stdin_port": 3, "control_port": 4, "hb_port": 5, "key": secrets.token_hex(16),
        "signature_scheme": "hmac-sha256", "kernel_name": "python3",
    }
    connection_file = folder / f"kernel-{n}.json"
    connection_file.write_text(json.dumps(connection), encoding="utf-8")
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the kernel
        os.close(go_write)
        _run_kernel(connection_file, go_read)
    os.close(go_read)
    return {"pid": pid, "go": go_write, "connection": connection}


def _run_kernel(connection_file: Path, go: int) -> None:
    """In the forked child: initialize, wait for the flow's cwd and environment, run."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # a group of its own, so it can end with everything its flow starts
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.environ.pop("JPY_PARENT_PID", None)
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(["-f", str(connection_file), "--IPKernelApp.parent_handle=0",
                        *KERNEL_ARGUMENTS])
        leave_children_to_the_worker(app)
        gc.freeze()  # the kernel's own objects: what is collected later is the flow's
        request = json.loads(_read_fd_line(go))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(environment.PARENT_PID, None)  # watched here, by pid
        project_on_path()
        _watch_pid(int(request["parent"]))
        app.start()
        exit_kernel()
    finally:
        os._exit(0)


def project_on_path() -> None:
    """Put the project root on the kernel's import path, after its first entry: a
    flow imports the project's own modules (``from lib.demand import x``) in a
    notebook as it does as a script, wherever the conductor was started."""
    root = os.environ.get(environment.PROJECT_ROOT)
    if root and root not in sys.path:
        sys.path.insert(1 if sys.path else 0, root)


def leave_children_to_the_worker(app: Any) -> None:
    """At shutdown ipykernel signals the flow's children one by one and waits for them
    to go, zombies included, for seconds; the worker kills the kernel's whole group
    once the kernel has exited instead (``shutdown_kernel``). POSIX only: elsewhere
    there is no group, and ipykernel's way is the one that ends them."""
    kernel = getattr(app, "kernel", None)
    if os.name == "posix" and hasattr(kernel, "_process_children"):
        kernel._process_children = lambda: []


def exit_kernel() -> None:
    """End a kernel whose loop has stopped: what a flow wrote reaches disk, then exit.

    Python's own exit runs the exit handlers, then frees every module, which with
    IPython loaded takes a fifth of a second per instance. A flow needs the first
    part: IPython's handler clears the notebook's namespace and collects, so the
    objects only the flow held are finalized (files flushed and closed), and
    logging's flushes its handlers. Files the flow still holds elsewhere (a module's
    global) are closed here, outermost layer first, as finalization would. Objects
    frozen (``gc.freeze``) before the flow ran are the kernel's own and left alone.
    """
    _let_control_thread_finish()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        run_exit_handlers()
    _close_open_files()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the process is ending either way
            pass
    os._exit(0)


def _let_control_thread_finish() -> None:
    """Wait for ipykernel's control thread to end its shutdown request.

    ipykernel 7's exit handler stops the IOPub thread, then joins the control thread;
    if that thread is still flushing its last output through IOPub, it waits out its
    flush timeout, and jupyter_client sends SIGTERM after 2.5 s (one shutdown in about
    a hundred here). The control thread stops by itself once the request is handled.
    """
    from ipykernel.kernelapp import IPKernelApp

    if IPKernelApp.initialized():
        control = getattr(IPKernelApp.instance(), "control_thread", None)
        if control is not None and control.is_alive():
            control.join(timeout=2.0)


def _close_open_files() -> None:
    """Close the files the flow left open: text and other wrappers, then buffers, then
    raw files, so that nothing a wrapper still holds is lost below it."""
    import io

    found: list[list[Any]] = [[], [], []]
    std = {id(sys.stdin), id(sys.stdout), id(sys.stderr), id(sys.__stdin__),
           id(sys.__stdout__), id(sys.__stderr__)}
    for generation in (0, 1, 2):
        for obj in gc.get_objects(generation):
            if not isinstance(obj, io.IOBase) or id(obj) in std:
                continue
            if isinstance(obj, io.FileIO):
                found[2].append(obj)
            elif isinstance(obj, (io.BufferedWriter, io.BufferedRandom, io.BufferedReader)):
                found[1].append(obj)
            elif type(obj).__module__.startswith(("ipykernel", "zmq")):
                continue  # the kernel's own streams, not files
            else:
                found[0].append(obj)  # text wrappers, gzip and other layered files
    for layer in found:
        for obj in layer:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - one bad file must not keep others open
                pass


def _read_fd_line(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            os._exit(0)  # the server went away before handing us out
        data += chunk
    os.close(fd)
    return data.decode()


def _watch_pid(pid: int) -> None:
    """End this kernel when the worker that asked for it is gone."""
    processes.when_gone(processes.end_own_group, pid=pid)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), [m for m in sys.argv[3].split(",") if m])
