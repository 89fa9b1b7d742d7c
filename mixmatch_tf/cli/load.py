"""Whether a timed interval had the machine to itself: the benchmark's clean steps.

A benchmark that alternates our step with a reference step on a loaded machine is not
fair: the two sides degrade differently under contention (a PyTorch step fell from
94-101 to 13-15 img/s beside another job while ours barely moved). So each timed
interval records how much CPU time the rest of the machine used meanwhile -- the
busy time of every CPU (``/proc/stat``: user, nice, system, irq, softirq, and steal,
time the hypervisor gave to other machines) minus this process's own CPU time
(``time.process_time``: every thread of ours, TensorFlow's and torch's pools
included) -- and an interval is clean when the others used at most ``OTHERS_LIMIT``
of one core (plus the counters' 10 ms tick). No library reports this per interval
(psutil would give the same counters, and is not a dependency).
"""
import dataclasses
import os
import time

# Share of one core the rest of the machine may use during a clean interval: the
# kernel and the sandbox's own daemons use ~1-3%.
OTHERS_LIMIT = 0.10
# /proc/stat counts in ticks of 1/USER_HZ seconds, on each CPU.
TICK = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
PROC_STAT = "/proc/stat"


def machine_busy_seconds(path=PROC_STAT):
    """(busy, steal) CPU seconds of all CPUs since boot, or None where there is no
    /proc/stat (not Linux)."""
    try:
        with open(path) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: inside user]
    values = [int(v) for v in fields[1:9]] + [0] * max(0, 9 - len(fields))
    user, nice, system, _, _, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) * TICK, steal * TICK


@dataclasses.dataclass(frozen=True)
class Load:
    """What the machine did during one interval of ``seconds``: our CPU time, the other
    processes' (None: unknown), and the hypervisor's steal."""
    seconds: float
    own_cpu: float
    others_cpu: float = None
    steal: float = None

    @property
    def others_cores(self):
        """Cores' worth of CPU the rest of the machine used (None: unknown)."""
        if self.others_cpu is None:
            return None
        return self.others_cpu / max(self.seconds, 1e-9)

    @property
    def clean(self):
        """True if the rest of the machine stayed under ``OTHERS_LIMIT`` of a core, None
        where that cannot be told."""
        if self.others_cpu is None:
            return None
        # Both counters advance in ticks: allow two ticks per CPU of rounding.
        slack = 2 * TICK * (os.cpu_count() or 1)
        return self.others_cpu <= OTHERS_LIMIT * self.seconds + slack


def measured(fn, counters=machine_busy_seconds):
    """Runs ``fn()``; returns (its result, the ``Load`` of the interval)."""
    before = counters()
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    seconds, own = time.perf_counter() - t0, time.process_time() - cpu0
    after = counters()
    if before is None or after is None:
        return result, Load(seconds, own)
    busy, steal = after[0] - before[0], after[1] - before[1]
    return result, Load(seconds, own, others_cpu=max(0.0, busy - own), steal=steal)


def summary(loads):
    """One phrase on how loaded the machine was during ``loads``."""
    known = [x for x in loads if x.others_cpu is not None]
    if not known:
        return "the machine's load is unknown here (no /proc/stat)"
    clean = sum(bool(x.clean) for x in known)
    others = sum(x.others_cpu for x in known) / max(1e-9, sum(x.seconds for x in known))
    steal = sum(x.steal for x in known) / max(1e-9, sum(x.seconds for x in known))
    return (f"{clean} of {len(known)} timed steps clean; other processes used "
            f"{others:.2f} cores on average (steal {steal:.2f})")
