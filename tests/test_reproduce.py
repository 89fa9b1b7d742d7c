"""The reproduction harness: report statistics and tables, skip-finished runs, an experiment."""
import json
import os

import numpy as np
import pytest

from mixmatch_tf.experiments import gan
from mixmatch_tf.reproduce import report, runner
from mixmatch_tf.reproduce.suites import RunSpec


def test_cell_stats_and_mean_std_hand_values():
    assert report.cell_stats([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)  # sample std of 1, 2, 3 is 1
    assert report.cell_stats([4.0, None]) == (4.0, 0.0, 1)      # one value: spread 0
    assert report.cell_stats([None]) is None
    assert report.mean_std([0.5, 1.5]) == "1.00 +- 0.71"
    assert report.mean_std([0.01, 0.03], ".4f") == "0.0200 +- 0.0141"


def test_table_places_cells_and_the_papers_numbers():
    specs = [RunSpec("ERM", "20%", (), s, paper=10.0) for s in (0, 1)]
    specs += [RunSpec("mixup", "20%", (), 0), RunSpec("mixup", "50%", (), 0)]
    results = {specs[0]: {"e": 4.0}, specs[1]: {"e": 6.0}, specs[2]: {"e": 1.0}}
    lines = report.table(specs, results, "e").splitlines()
    assert lines[0] == "| | 20% | 50% |"
    assert lines[2] == "| ERM | 5.00 +- 1.41 (2) [paper 10.00] | -- |"
    assert lines[3] == "| mixup | 1.00 +- 0.00 (1) | -- |"


def test_run_suite_skips_finished_runs(tmp_path):
    spec = RunSpec("ERM", "clean", (("dataset", "no_such_data"),), 0)
    folder = runner.run_dir(str(tmp_path), spec)
    os.makedirs(folder)
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump({"test_error": 1.0}, f)
    log = tmp_path / "progress.txt"
    with open(log, "w") as stream:
        # The flags would fail if the run started; a finished run is never started.
        assert runner.run_suite([spec], str(tmp_path), stream=stream) == []
    assert "already finished" in log.read_text()


@pytest.mark.parametrize("use_mixup", [False, True])
def test_gan_quality_of_real_data_and_short_training(use_mixup):
    modes, good = gan.quality(gan.real_batch(np.array([1, 2], np.int32), 2000).numpy())
    assert modes == gan.MODES and good > 97.0  # 1 - exp(-4.5) = 98.9% of real samples are within 3 std
    snaps = gan.train(0, use_mixup, iterations=100)
    assert sorted(snaps) == [10, 100]
    assert snaps[100].shape[1] == 2 and np.all(np.isfinite(snaps[100]))


def test_gan_experiment_writes_its_table_and_figure(tmp_path):
    text = gan.run(str(tmp_path), seeds=[0, 1], iterations=100)
    rows = [line for line in text.splitlines() if line.startswith("| GAN")]
    assert len(rows) == 2 and all(" +- " in row for row in rows)
    assert os.path.getsize(tmp_path / "figures" / "gan2d.png") > 1000


def test_summarize_reports_each_papers_last_epochs_statistic():
    from mixmatch_tf.training import records as results
    errors = [9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 30.0]
    summary = results.summarize([{"step": i, "test_error": e} for i, e in enumerate(errors)])
    assert summary == {
        "test_error": 30.0, "best_test_error": 1.0,
        "mean_last_10_test_error": 7.5,      # (1 + ... + 9 + 30) / 10: DivideMix's statistic
        "median_last_10_test_error": 5.5,    # (5 + 6) / 2: the mixup paper's
        "median_last_20_test_error": 6.5,    # (6 + 7) / 2 of all 12: MixMatch's
    }


def test_dividemix_tables_report_the_mean_of_the_last_10_epochs():
    from mixmatch_tf.reproduce import SUITES
    for name in ("cifar10_noisy", "cifar100_noisy"):
        assert SUITES[name].metrics[0][0] == "mean_last_10_test_error"
        assert "mean of the last 10 epochs" in SUITES[name].metrics[0][1]


def test_mixup_ablation_has_the_five_latent_layer_rows():
    """Table 5 rows 'mix labels and latent representations' at layers 1-5 (CIFAR presets);
    the digits suite keeps the two layers its small CNN has."""
    from mixmatch_tf.reproduce.suites import ABLATION, SUITES
    layers = {int(dict(flags)["mix_layer"]): paper for _, flags, paper in ABLATION
              if "mix_layer" in dict(flags)}
    assert layers == {1: (4.44, 4.51), 2: (4.56, 4.61), 3: (5.39, 5.55), 4: (5.95, 5.43),
                      5: (5.39, 5.15)}
    cifar = {(s.row, s.column): s for s in SUITES["mixup_ablation_cifar10"].make_runs([0])}
    for k in range(1, 6):
        for wd in ("1e-4", "5e-4"):
            spec = cifar[(f"mix labels and latent representations, layer {k}", f"wd {wd}")]
            preset = dict(spec.flags)["flagfile"]
            with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), preset)) as f:
                assert f"--mix_layer={k}\n" in f.read() + "\n", preset
    digits = {dict(s.flags).get("mix_layer") for s in SUITES["mixup_ablation_digits"].make_runs([0])}
    assert digits == {None, "1", "2"}


def _processes_mentioning(text):
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def test_sigterm_stops_the_suite_and_its_runs_and_keeps_their_checkpoints(tmp_path):
    """SIGTERM to reproduce.py reaches its train.py children, which it waits for: none is
    left running orphaned, and the interrupted run keeps its checkpoints to resume from."""
    import signal
    import subprocess
    import sys
    import time
    from conftest import ROOT
    out = tmp_path / "suite"
    cmd = [sys.executable, "scripts/reproduce.py", "--suite=digits_noisy", "--seeds=0",
           "--jobs=1", "--only=erm--sym-20", f"--output_dir={out}",
           "--train_flags=--checkpoint_every=20 --steps_per_call=10"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 300
    ckpt_dir = out / "runs" / "erm--sym-20--seed0" / "ckpt"
    while not (ckpt_dir.exists() and any(n.endswith(".index") for n in os.listdir(ckpt_dir))):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-2000:]
        time.sleep(0.05)
    children = [p for p in _processes_mentioning(str(out)) if p != proc.pid]
    assert children, "no train.py child found"
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "interrupted: finished runs are kept" in text
    assert not [p for p in children if os.path.exists(f"/proc/{p}")
                and open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] != "Z"]
    assert not (out / "runs" / "erm--sym-20--seed0" / "metrics.json").exists()
    assert any(n.endswith(".index") for n in os.listdir(ckpt_dir))  # what a re-run resumes
