"""The run folder's lock: one trainer writes a run folder at a time."""
import atexit
import json
import os
import socket
import time

from absl import logging

from mixmatch_tf.training.folder import LOCK_FILE, RunFolderError


class RunLockedError(RunFolderError):
    """Another live trainer holds the run folder's lock."""


def _process_start(pid):
    """The kernel's start time of ``pid`` (Linux), to tell a reused pid apart; else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return None


def _alive(holder):
    """Whether the lock holder (same host) still runs."""
    pid = holder.get("pid")
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (TypeError, ValueError, OverflowError):  # no such pid can exist: a stale lock
        return False
    if os.path.isdir("/proc"):
        start = _process_start(pid)
        if start is None:  # a zombie: killed, not yet reaped
            return False
        return holder.get("start") in (None, start)
    return True


class RunLock:
    """A lock file naming the pid and host of the trainer writing a run folder.

    Created atomically with its content (written aside, then hard-linked into
    place). A lock of a dead process on this host (killed, even with kill -9)
    is taken over with a warning; a live holder, or one on another host, is
    refused naming it. The same process may take its own lock again.
    """

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, LOCK_FILE)
        self.held = False
        self._me = {"pid": os.getpid(), "host": socket.gethostname(),
                    "start": _process_start(os.getpid())}

    def holder(self):
        """The lock file's holder: {} without a lock file, None when it is unreadable
        or not a holder (a JSON object), as a lock left half-written would be."""
        try:
            with open(self.path, encoding="utf-8") as f:
                holder = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) and holder else None

    def acquire(self):
        me = dict(self._me, since=time.time())
        for _ in range(5):
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(me, f)
            try:
                os.link(tmp, self.path)
                self.held = True
                atexit.register(self.release)
                return
            except FileExistsError:
                pass
            finally:
                os.remove(tmp)
            holder = self.holder()
            if holder == {}:
                continue  # released meanwhile
            if holder is not None and (holder.get("pid"), holder.get("host")) == (
                    me["pid"], me["host"]):
                self.held = True
                return
            if holder is not None and (holder.get("host") != me["host"] or _alive(holder)):
                raise RunLockedError(
                    f"{os.path.dirname(self.path)} is in use by pid {holder.get('pid')} on host "
                    f"{holder.get('host')} (lock file {self.path}); wait for it to end, or "
                    "delete the lock file if that process no longer runs")
            logging.warning("Taking over the lock %s of %s, which no longer runs", self.path,
                            "an unreadable holder" if holder is None else
                            f"pid {holder.get('pid')} on host {holder.get('host')}")
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        raise RunLockedError(f"could not take the lock {self.path}; another trainer keeps "
                             "taking it")

    def release(self):
        if self.held:
            self.held = False
            holder = self.holder()
            if holder and (holder.get("pid"), holder.get("host")) == (self._me["pid"],
                                                                      self._me["host"]):
                os.remove(self.path)
