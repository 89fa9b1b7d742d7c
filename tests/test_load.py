"""The benchmark's clean steps: an interval is clean only if the rest of the machine
stayed idle, and no ratio comes from steps that were not clean (a busy loop beside)."""
import subprocess
import sys
import time

import pytest

from mixmatch_tf.cli import load

BUSY = "import time\nend = time.time() + 60\nwhile time.time() < end: pass\n"


def fake_counters(*readings):
    values = iter(readings)
    return lambda: next(values)


def test_others_cpu_is_the_machines_busy_time_less_our_own():
    # 0.3 s of the machine's busy time, 0.1 s of it steal, during a sleep (ours ~0)
    _, measured = load.measured(lambda: time.sleep(0.2), fake_counters((10.0, 1.0), (10.3, 1.1)))
    assert measured.own_cpu < 0.05
    assert measured.others_cpu == pytest.approx(0.3 - measured.own_cpu)
    assert measured.steal == pytest.approx(0.1)
    assert measured.others_cores == pytest.approx(measured.others_cpu / measured.seconds)
    assert measured.clean is False
    _, idle = load.measured(lambda: time.sleep(0.2), fake_counters((10.0, 1.0), (10.0, 1.0)))
    assert idle.others_cpu == 0.0 and idle.clean is True
    _, unknown = load.measured(lambda: 7, lambda: None)
    assert unknown.others_cpu is None and unknown.clean is None


def test_proc_stat_is_read_in_ticks(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 20 900 3 1 2 7 0 0\ncpu0 50 2 10 450 1 0 1 3 0 0\n")
    busy, steal = load.machine_busy_seconds(str(stat))
    assert busy == pytest.approx((100 + 5 + 20 + 1 + 2 + 7) * load.TICK)
    assert steal == pytest.approx(7 * load.TICK)
    assert load.machine_busy_seconds(str(tmp_path / "missing")) is None


def _busy_beside(fn):
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(0.3)  # the loop is running
        return fn()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(load.machine_busy_seconds() is None, reason="no /proc/stat")
def test_a_busy_loop_beside_makes_an_interval_unclean():
    _, busy = _busy_beside(lambda: load.measured(lambda: time.sleep(1.0)))
    assert busy.clean is False and busy.others_cores > 0.5, busy
    assert "0 of 1 timed steps clean" in load.summary([busy])


@pytest.mark.skipif(load.machine_busy_seconds() is None, reason="no /proc/stat")
def test_no_ratio_from_steps_timed_beside_a_busy_loop():
    from mixmatch_tf.cli.benchmark import compare
    ours, reference = (lambda: time.sleep(0.3)), (lambda: time.sleep(0.5))
    result = _busy_beside(lambda: compare(ours, reference, calls=3, warmup_calls=0,
                                          max_rounds=3))
    assert "ratio" not in result, result
    assert min(result["clean_steps"], result["reference_clean_steps"]) < 3, result
    assert "other processes used" in result["load"]
    assert result["step_seconds"] == pytest.approx(0.3, rel=0.3)  # ours, from every call


def test_the_ratio_comes_from_clean_steps_of_both_sides():
    """Counters that see an idle machine (the busy time grows by our own CPU time only):
    every call is clean, and the ratio is the reference's median over ours."""
    from mixmatch_tf.cli.benchmark import compare
    idle = lambda: (time.process_time(), 0.0)  # noqa: E731
    result = compare(lambda: time.sleep(0.02), lambda: time.sleep(0.04), calls=3,
                     warmup_calls=1, counters=idle)
    assert result["clean_steps"] == result["reference_clean_steps"] == 3
    assert result["timed_steps"] == 3  # it stops once each side has its clean calls
    assert result["ratio"] == pytest.approx(2.0, rel=0.3)
    assert result["ratio"] == result["reference_step_seconds"] / result["step_seconds"]
    unknown = compare(lambda: None, lambda: None, calls=2, warmup_calls=0,
                      counters=lambda: None)
    assert unknown["clean_steps"] == "unknown" and "ratio" in unknown
