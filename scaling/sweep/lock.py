"""One driver per sweep: an advisory lock file in the sweep's storage naming its owner, host, pid and heartbeat.

``scaling sweep`` holds :class:`SweepLock` while it plans and runs; a second driver on the same
storage is refused with a one-line error naming the owner. A lock left by a dead driver is
stale and taken over:

* on a local (or NFS-mounted) folder the driver also holds an exclusive ``flock`` on the file,
  which the kernel drops when the process dies, however it dies; a lock whose owner is on
  another host also counts as live while its heartbeat is fresher than ``stale_after`` seconds
  (``flock`` is not seen across hosts on every network filesystem);
* on object storage (``s3://``...) there is no such primitive: the lock is read, written and
  read back, and it is stale once its heartbeat is older than ``stale_after`` or, on this host,
  once its pid is gone. Two drivers started within the same second may both pass; this is an
  advisory lock.

Readers (``scaling results``, ``scaling analyze``) never look at the lock: the files they read
are always replaced whole.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import pyarrow.fs as pafs

from core.errors import UserError
from scaling.sweep.records import SweepStore

LOCK_FILE = "driver.lock"


@dataclass(frozen=True)
class LockOwner:
    """Who holds a sweep's lock, as written in the lock file."""

    user: str
    host: str
    pid: int
    started: float  # unix seconds
    heartbeat: float  # unix seconds of the owner's last sign of life
    token: str  # tells this driver's lock from another's

    @staticmethod
    def of_this_process() -> "LockOwner":
        now = time.time()
        return LockOwner(_user(), socket.gethostname(), os.getpid(), now, now, uuid.uuid4().hex)

    @staticmethod
    def from_json(data: Any) -> "LockOwner | None":
        try:
            return LockOwner(str(data["user"]), str(data["host"]), int(data["pid"]), float(data["started"]),
                             float(data["heartbeat"]), str(data["token"]))
        except (TypeError, KeyError, ValueError):
            return None

    def describe(self, now: float) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return (f"{self.user}@{self.host} pid {self.pid} (since {started}, last heartbeat "
                f"{max(now - self.heartbeat, 0):.0f} s ago)")


def is_stale(owner: LockOwner, now: float, stale_after: float, this_host: str,
             pid_alive: Callable[[int], bool]) -> bool:
    """Whether ``owner``'s driver is gone: its pid is dead (same host) or its heartbeat is too old."""
    if owner.host == this_host and not pid_alive(owner.pid):
        return True
    return now - owner.heartbeat > stale_after


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class SweepLock:
    """The advisory lock of one sweep's storage; use :meth:`held` around everything a driver writes."""

    def __init__(self, store: SweepStore, heartbeat_seconds: float = 10.0, stale_after: float = 120.0) -> None:
        self.store = store
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_after = stale_after
        self.owner = LockOwner.of_this_process()
        self.local = isinstance(store.filesystem, pafs.LocalFileSystem)
        self.where = f"{store.root}/{LOCK_FILE}"
        self._descriptor: int | None = None

    @contextmanager
    def held(self, log: Callable[[str], None] = lambda line: None) -> Iterator[None]:
        """Hold the lock (refusing with a UserError if another driver does), heartbeating until the block ends."""
        previous = self._acquire_local() if self.local else self._acquire_remote()
        if previous is not None:
            log(f"took over the stale lock of {previous.describe(time.time())}")
        stop = threading.Event()
        beating = threading.Thread(target=self._beat, args=(stop,), name="sweep-lock-heartbeat", daemon=True)
        beating.start()
        try:
            yield
        finally:
            stop.set()
            beating.join()
            self._release()

    # --- local folders: flock plus the owner's details
    def _acquire_local(self) -> LockOwner | None:
        folder = self.store.path
        os.makedirs(folder, exist_ok=True)
        path = f"{folder}/{LOCK_FILE}"
        while True:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _flock(descriptor)
            except BlockingIOError:
                os.close(descriptor)
                raise self._in_use(self._read_local(path)) from None
            if _same_file(descriptor, path):  # not a file its previous holder unlinked meanwhile
                break
            os.close(descriptor)
        self._descriptor = descriptor
        previous = self._read_local(path)
        # The flock proves a holder on this host dead; one on another host may not see it, so its heartbeat decides.
        if previous is not None and previous.host != self.owner.host \
                and not is_stale(previous, time.time(), self.stale_after, self.owner.host, pid_alive):
            self._descriptor = None
            os.close(descriptor)
            raise self._in_use(previous)
        self._write_owner()
        return previous

    def _read_local(self, path: str) -> LockOwner | None:
        try:
            with open(path, "rb") as file:
                return LockOwner.from_json(json.loads(file.read() or b"null"))
        except (OSError, ValueError):
            return None

    # --- object storage: read, write, read back
    def _acquire_remote(self) -> LockOwner | None:
        previous = LockOwner.from_json(self._read_remote())
        if previous is not None and not is_stale(previous, time.time(), self.stale_after, self.owner.host, pid_alive):
            raise self._in_use(previous)
        self._write_owner()
        time.sleep(0.5)  # let a driver that read the same stale lock write its own, then see who won
        current = LockOwner.from_json(self._read_remote())
        if current is not None and current.token != self.owner.token:
            raise self._in_use(current)
        return previous

    def _read_remote(self) -> Any:
        try:
            return self.store.read_json(LOCK_FILE)
        except UserError:  # half-written by another driver: treat as held by someone unknown
            return {}

    # --- both
    def _write_owner(self) -> None:
        data = (json.dumps(asdict(self.owner)) + "\n").encode()
        if self._descriptor is not None:
            os.ftruncate(self._descriptor, 0)
            os.pwrite(self._descriptor, data, 0)
        else:
            self.store.write_bytes(LOCK_FILE, data)

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_seconds):
            self.owner = replace(self.owner, heartbeat=time.time())
            try:
                self._write_owner()
            except OSError:
                pass  # a missed heartbeat only makes the lock look older to other hosts

    def _release(self) -> None:
        if self._descriptor is not None:
            try:
                os.unlink(f"{self.store.path}/{LOCK_FILE}")  # before unlocking: a waiter then finds a fresh file
            except FileNotFoundError:
                pass
            os.close(self._descriptor)
            self._descriptor = None
            try:
                os.rmdir(self.store.path)  # a sweep that never wrote anything leaves no folder behind
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            return
        try:
            self.store.filesystem.delete_file(f"{self.store.path}/{LOCK_FILE}")
        except (FileNotFoundError, OSError):
            pass

    def _in_use(self, owner: LockOwner | None) -> UserError:
        holder = owner.describe(time.time()) if owner is not None else "another driver"
        return UserError(f"sweep storage {self.store.root} is in use by {holder}; wait for that sweep to finish "
                         f"(scaling results/analyze work meanwhile), or delete {self.where} if that driver is gone")


def _flock(descriptor: int) -> None:
    import fcntl

    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _same_file(descriptor: int, path: str) -> bool:
    try:
        return os.fstat(descriptor).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
