"""The run folder loses nothing: corrupt checkpoints, refused starts, identity, the lock,
kills, and unreadable files -- each done for real to a run of ERM on the digits."""
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from mixmatch_tf.methods import ConfigError
from mixmatch_tf.training import RunConfig, RunFolderError, RunLockedError, Trainer, load_run
from mixmatch_tf.training import identity as identity_lib

TINY = {"train_steps": 4, "eval_every": 2}


def make(tmp_path, strategy, data, run=None, method="erm", **config):
    run = RunConfig(model_dir=str(tmp_path), checkpoint_every=1, keep_checkpoints=10,
                    steps_per_call=1, **(run or {}))
    return Trainer(method, data, run, config=dict(TINY, **config), strategy=strategy)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, one_replica, digits):
    """A finished 4-step run with checkpoints 1..4; tests damage copies of it."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    make(folder, one_replica, digits).fit()
    return folder


@pytest.fixture
def trained(tmp_path, finished_run):
    """A copy of the finished 4-step run with checkpoints 1..4 (the run folder holds
    no path of its own: the checkpoint state file names checkpoints relatively)."""
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


def ckpt(folder, n, part="index"):
    suffix = "index" if part == "index" else "data-00000-of-00001"
    return os.path.join(folder, "ckpt", f"ckpt-{n}.{suffix}")


def test_corrupt_state_file_resumes_from_the_newest_checkpoint(trained, one_replica, digits,
                                                                caplog):
    with open(os.path.join(trained, "ckpt", "checkpoint"), "w") as f:
        f.write("garbage ][\n")
    tr = make(trained, one_replica, digits)
    assert tr.restored_from.endswith("ckpt-4") and int(tr.step) == 4
    assert "state file" in caplog.text and "corrupt" in caplog.text
    # the state file is rewritten: TensorFlow's own reader finds the checkpoint again
    import tensorflow as tf
    assert tf.train.latest_checkpoint(str(trained / "ckpt")).endswith("ckpt-4")


@pytest.mark.parametrize("damage", ["truncate_data", "empty_index", "delete_index"])
def test_broken_latest_checkpoint_falls_back_to_the_newest_intact_one(trained, one_replica,
                                                                      digits, caplog, damage):
    if damage == "truncate_data":
        size = os.path.getsize(ckpt(trained, 4, "data"))
        with open(ckpt(trained, 4, "data"), "r+b") as f:
            f.truncate(size // 2)
    elif damage == "empty_index":
        open(ckpt(trained, 4), "w").close()
    else:
        os.remove(ckpt(trained, 4))
    tr = make(trained, one_replica, digits)
    assert tr.restored_from.endswith("ckpt-3") and int(tr.step) == 3
    assert "ckpt-4" in caplog.text and "newest intact" in caplog.text
    # nothing intact was deleted; the broken one is kept aside, not in the way
    for n in (1, 2, 3):
        assert os.path.exists(ckpt(trained, n))
    assert not os.path.exists(ckpt(trained, 4, "data"))
    m = tr.fit()  # and the run finishes from there
    assert m["steps"] == 4 and m["train_metrics"]


def test_no_intact_checkpoint_stops_naming_the_folder(trained, one_replica, digits):
    for n in (1, 2, 3, 4):
        open(ckpt(trained, n), "w").close()
    with pytest.raises(RunFolderError, match=str(trained / "ckpt")):
        make(trained, one_replica, digits)
    for n in (1, 2, 3, 4):  # and nothing was touched
        assert os.path.exists(ckpt(trained, n))


def test_refused_starts_write_nothing(tmp_path, one_replica, digits):
    folder = tmp_path / "run"
    with pytest.raises(ConfigError, match="num_labeled"):
        make(folder, one_replica, digits, method="mixmatch", num_labeled=2000)
    with pytest.raises(ConfigError, match="seed"):
        RunConfig(model_dir=str(folder), seed=-1)
    import keras
    wrong = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    with pytest.raises(Exception):
        Trainer("erm", digits, RunConfig(model_dir=str(folder)), config=TINY,
                strategy=one_replica, model=wrong)
    assert not folder.exists() or not os.listdir(folder)
    # so the corrected command starts
    tr = make(folder, one_replica, digits, method="mixmatch", num_labeled=20)
    assert len(tr.context.labeled_indices) == 20


@pytest.mark.parametrize("change,field", [
    ("class_names", "class_names"), ("labels", "labels_fingerprint"),
    ("precision", "precision"), ("config", "config.weight_decay")])
def test_a_refused_resume_names_the_field_and_both_values(trained, one_replica, digits, change,
                                                          field):
    data, run, config = digits, None, {}
    if change == "class_names":
        data = dataclasses.replace(digits, class_names=tuple(f"c{i}" for i in range(10)))
    elif change == "labels":
        data = dataclasses.replace(digits, train_labels=np.roll(digits.train_labels, 1))
    elif change == "precision":  # auto never picks mixed_float16 on a CPU
        run = {"precision": "mixed_float16"}
    else:
        config = {"weight_decay": 0.123}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        make(trained, one_replica, data, run=run, **config)
    saved = json.load(open(trained / "run.json"))
    if change == "precision":
        assert repr(saved["precision"]) in str(e.value) and "'mixed_float16'" in str(e.value)
    elif change == "config":
        assert "0.123" in str(e.value) and repr(saved["config"]["weight_decay"]) in str(e.value)
    else:
        assert repr(saved[field]) in str(e.value)
    # load_run refuses other data too (evaluate.py would report other numbers)
    if change in ("class_names", "labels"):
        with pytest.raises(ConfigError, match=field):
            load_run(str(trained), strategy=one_replica, data=data)


def test_unreadable_run_files_are_named(trained, one_replica, digits):
    with open(trained / "evals.json", "w") as f:
        f.write("{not json")
    with pytest.raises(RunFolderError, match="evals.json"):
        make(trained, one_replica, digits)
    with open(trained / "run.json", "w") as f:
        f.write("")
    with pytest.raises(RunFolderError, match="run.json"):
        load_run(str(trained), strategy=one_replica, data=digits)


def test_metrics_after_a_resume_hold_the_keys_of_an_uninterrupted_run(trained, one_replica,
                                                                       digits):
    full = json.load(open(trained / "metrics.json"))
    os.remove(trained / "metrics.json")  # killed after the last checkpoint
    again = make(trained, one_replica, digits).fit()
    assert set(again) - {"complete"} == set(full)
    assert again["train_metrics"] == full["train_metrics"] and again["train_metrics"]


def _train_script(model_dir, steps):
    return subprocess.Popen(
        [sys.executable, "scripts/train.py", "--method=erm", "--dataset=digits",
         f"--train_steps={steps}", "--checkpoint_every=5", "--steps_per_call=5",
         f"--model_dir={model_dir}"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=300):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_lock_refuses_a_second_trainer_and_a_killed_holder_is_taken_over(tmp_path, one_replica,
                                                                         digits):
    proc = _train_script(tmp_path, 100000)
    second = None
    try:
        # a second trainer process is refused too, and says so; it starts (and imports
        # TensorFlow) as soon as the first holds the lock, while the first trains
        _wait_for(tmp_path / "lock", proc)
        second = _train_script(tmp_path, 100000)
        _wait_for(ckpt(tmp_path, 5), proc)
        with pytest.raises(RunLockedError) as e:
            make(tmp_path, one_replica, digits, train_steps=100000, eval_every=None)
        assert f"pid {proc.pid}" in str(e.value) and socket.gethostname() in str(e.value)
        _, err = second.communicate(timeout=300)
        assert proc.poll() is None  # the holder still ran when the second was refused
        assert second.returncode != 0 and f"pid {proc.pid}" in err
    finally:
        if second is not None and second.poll() is None:
            second.kill()
            second.wait()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert os.path.exists(tmp_path / "lock")  # kill -9 left it behind: stale now
    tr = make(tmp_path, one_replica, digits, train_steps=100000, eval_every=None)  # taken over
    holder = json.load(open(tmp_path / "lock"))
    assert holder["pid"] == os.getpid() and int(tr.step) >= 5
    tr.run_dir.release()
    assert not os.path.exists(tmp_path / "lock")


def test_an_export_killed_midway_leaves_nothing_in_the_way(trained, one_replica, digits,
                                                           tmp_path_factory):
    export_base = tmp_path_factory.mktemp("export")
    code = ("import sys, os, signal\n"
            "sys.path.insert(0, sys.argv[3])\n"
            "from mixmatch_tf.training import load_run\n"
            "from mixmatch_tf.serving import export as ex\n"
            "real = ex.write_warmup_file\n"
            "def killed(*a, **k):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "ex.write_warmup_file = killed\n"
            "load_run(sys.argv[1]).export(sys.argv[2])\n")
    out = subprocess.run([sys.executable, "-c", code, str(trained), str(export_base), ROOT],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    left = os.listdir(export_base / "digits")
    assert any(n.startswith(".tmp-") for n in left), left
    path = load_run(str(trained), strategy=one_replica, data=digits).export(str(export_base))
    assert path.endswith(os.path.join("digits", "1"))
    assert os.listdir(export_base / "digits") == ["1"]


def test_identity_difference_hand_values():
    saved = {"method": "erm", "config": {"a": 1, "b": [1, 2]}, "precision": "float32"}
    assert identity_lib.identity_difference(saved, {"method": "erm", "config": {"a": 1, "b": (1, 2)},
                                                   "precision": "float32"}) is None
    assert identity_lib.identity_difference(
        saved, {"method": "erm", "config": {"a": 2, "b": (1, 2)}, "precision": "float32"}
    ) == ("config.a", "a", 1, 2)
    # keys an older run.json lacks are not compared
    assert identity_lib.identity_difference(saved, dict(saved, num_classes=3)) is None
    newer = {"method": "erm", "config": {"a": 1, "b": (1, 2), "c": ()}, "precision": "float32"}
    assert identity_lib.identity_difference(saved, newer) == ("config.c", "c", None, [])


def test_migrate_completes_an_older_config_as_the_run_behaved():
    """The one migration: a setting added since reads as its default, except where the
    older runs behaved otherwise (the EMA warm-up: a constant decay before it); a key
    that is no setting of the method is refused, naming the file."""
    from mixmatch_tf.methods import get_method
    config = get_method("mixmatch").Config().to_dict()
    del config["ema_warmup"], config["lambda_u"]
    saved = {k: None for k in identity_lib.IDENTITY_KEYS + ("normalization",)}
    saved.update(format=3, method="mixmatch", config=config, dataset="digits")
    migrated = identity_lib.migrate(saved, "run.json", "retrain")
    assert migrated["config"]["ema_warmup"] is False  # not the new default, True
    assert get_method("mixmatch").Config().ema_warmup is True
    assert migrated["config"]["lambda_u"] == get_method("mixmatch").Config().lambda_u
    assert "lambda_u" not in saved["config"]  # the file's content is not changed
    # a run.json of the first format (no "format"; LEGACY_REQUIRED) trained in float32
    legacy = {k: saved[k] for k in identity_lib.LEGACY_REQUIRED}
    assert identity_lib.migrate(legacy, "run.json", "retrain")["precision"] == "float32"
    assert identity_lib.migrate(saved, "run.json", "retrain")["precision"] is None
    with pytest.raises(RunFolderError, match=r"run\.json: config holds 'colour', not a "
                                             r"setting of method 'mixmatch'; retrain"):
        identity_lib.migrate(dict(saved, config=dict(config, colour=1)), "run.json", "retrain")


def test_a_run_from_before_the_ema_warmup_resumes_only_with_its_constant_decay(
        tmp_path, one_replica, digits):
    make(tmp_path, one_replica, digits, method="supervised", num_labeled=20, train_steps=2,
         eval_every=2).fit()
    settings = json.load(open(tmp_path / "run.json"))
    del settings["config"]["ema_warmup"]  # as written by the version before the setting
    (tmp_path / "run.json").write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match=r"config\.ema_warmup=False, not True"):
        make(tmp_path, one_replica, digits, method="supervised", num_labeled=20, train_steps=2,
             eval_every=2)
    trainer = make(tmp_path, one_replica, digits, method="supervised", num_labeled=20,
                   train_steps=2, eval_every=2, ema_warmup=False)
    assert int(trainer.step) == 2
    # evaluation and export read it with the decay it trained under
    assert load_run(str(tmp_path), strategy=one_replica).config.ema_warmup is False



# ------------------------------------------------------------- a lost identity
def _damage_run_json(folder, how):
    path = folder / "run.json"
    settings = json.load(open(path))
    if how == "deleted":
        os.remove(path)
        return "run.json is missing, but .* holds checkpoints \\(ckpt-4\\)"
    text = {"null": "null", "list": "[]", "number": "3"}.get(how)
    if text is None:
        if how == "no_config":
            settings["config"] = "erm"
        else:  # a key removed by hand
            del settings[how]
        text = json.dumps(settings)
    path.write_text(text)
    return {"null": "run.json holds null, but .* holds checkpoints",
            "list": "run.json holds a list, not a run's settings",
            "number": "run.json holds a int, not a run's settings",
            "no_config": "run.json has no config object"}.get(
                how, f"run.json lacks '{how}', which every run.json of its format holds")


@pytest.mark.parametrize("how", ["deleted", "null", "list", "number", "no_config", "seed",
                                 "method", "precision", "augmentation", "labels_fingerprint"])
def test_a_run_whose_identity_is_lost_is_never_resumed(trained, one_replica, digits, how):
    """run.json says what the checkpoints are a run of: without it (or a key of it) a
    resume under other settings would claim them as its own, so every reader refuses."""
    message = _damage_run_json(trained, how)
    before = sorted(os.listdir(trained / "ckpt"))
    for other in ({"seed": 7}, {}):  # another seed, or the very same settings
        with pytest.raises(RunFolderError, match=message):
            make(trained, one_replica, digits, run=other)
    with pytest.raises(RunFolderError, match=message):
        load_run(str(trained), strategy=one_replica, data=digits)
    assert sorted(os.listdir(trained / "ckpt")) == before  # nothing repaired or written
    assert not os.path.exists(trained / "lock")


def test_a_run_json_of_an_older_version_still_resumes(trained, one_replica, digits):
    settings = json.load(open(trained / "run.json"))
    for key in ("format", "precision", "augmentation", "labels_fingerprint",
                "files_fingerprint", "data_options"):
        del settings[key]  # what the first versions did not write
    (trained / "run.json").write_text(json.dumps(settings))
    assert int(make(trained, one_replica, digits).step) == 4
    del settings["normalization"]  # the first version wrote it
    (trained / "run.json").write_text(json.dumps(settings))
    with pytest.raises(RunFolderError, match="lacks 'normalization'"):
        make(trained, one_replica, digits)


def test_a_run_json_of_format_2_resumes_as_without_a_noise_mapping(trained, one_replica,
                                                                   digits):
    settings = json.load(open(trained / "run.json"))
    assert settings["format"] == 3 and settings["noise_mapping"] is None
    settings["format"] = 2
    del settings["noise_mapping"]  # format 3 added it
    (trained / "run.json").write_text(json.dumps(settings))
    assert int(make(trained, one_replica, digits).step) == 4
    assert load_run(str(trained), strategy=one_replica, data=digits).run.noise_mapping is None
    settings["format"] = 3  # but format 3 always holds it
    (trained / "run.json").write_text(json.dumps(settings))
    with pytest.raises(RunFolderError, match="lacks 'noise_mapping'"):
        make(trained, one_replica, digits)


def test_a_folder_without_run_json_or_checkpoints_is_a_new_run(tmp_path, one_replica, digits):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "run.json").write_text("null")
    assert int(make(tmp_path, one_replica, digits).step) == 0


# --------------------------------------------------------------- retention
def _checkpoints(folder):
    names = os.listdir(folder / "ckpt") if (folder / "ckpt").exists() else []
    return sorted(int(n[5:-6]) for n in names if n.startswith("ckpt-") and n.endswith(".index"))


def test_keep_checkpoints_holds_across_chunks_kills_and_repairs(tmp_path, one_replica, digits):
    """--keep_checkpoints=2 through three chunks (stop_at_step) and two SIGKILLs of
    scripts/train.py: each start repairs the state file, and the manager still deletes
    all but the newest two (it kept every one after the first repair, which wrote no
    timestamps)."""
    folder = tmp_path / "run"
    config = {"train_steps": 50, "eval_every": 50}
    args = ["scripts/train.py", "--method=erm", "--dataset=digits", "--train_steps=50",
            "--eval_every=50", "--checkpoint_every=5", "--steps_per_call=5",
            "--keep_checkpoints=2", "--precision=float32", f"--model_dir={folder}"]

    def chunk(stop=None):
        run = RunConfig(model_dir=str(folder), checkpoint_every=5, steps_per_call=5,
                        keep_checkpoints=2, precision="float32", stop_at_step=stop)
        Trainer("erm", digits, run, config=config, strategy=one_replica).fit()

    def killed_after(step):
        proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while not os.path.exists(ckpt(folder, step)) and time.time() < deadline:
            assert proc.poll() is None, "the run ended before the kill"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    # A kill may land between writing a checkpoint and deleting the oldest one: a killed
    # chunk may leave keep + 1, and the next start's first save must bring it back to keep.
    seen = []
    for start, most in ((lambda: chunk(10), 2), (lambda: killed_after(20), 3),
                        (lambda: chunk(30), 2), (lambda: killed_after(40), 3), (chunk, 2)):
        start()
        seen.append(_checkpoints(folder))
        assert len(seen[-1]) <= most, seen
    assert seen[-1] == [45, 50] and os.path.exists(folder / "metrics.json")


# ------------------------------------------------------------ damaged run files
@pytest.mark.parametrize("damage,message", [
    ("truncated", "noisy_labels.npz is unreadable"),
    ("not_a_zip", "noisy_labels.npz is unreadable"),
    ("no_labels", "'labels' must hold"),
    ("out_of_range", "'labels' must be class ids in [0, 10)"),
])
def test_a_damaged_noisy_labels_file_is_named_before_any_step(tmp_path, one_replica, digits,
                                                               damage, message):
    run = {"noise_type": "sym", "noise_rate": 0.5}
    make(tmp_path, one_replica, digits, run=run, train_steps=1).fit()
    path = tmp_path / "noisy_labels.npz"
    with np.load(path) as f:
        arrays = dict(f)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "not_a_zip":
        path.write_bytes(b"not a zip file at all")
    else:
        if damage == "no_labels":
            del arrays["labels"]
        else:
            arrays["labels"][3] = 10 ** 9
        np.savez(path, **arrays)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}/") + ".*" + re.escape(message)):
        make(tmp_path, one_replica, digits, run=run, train_steps=1)


@pytest.mark.parametrize("damage,message", [
    ("not_a_zip", "labeled_indices.npz is unreadable"),
    ("out_of_range", "'indices' must be training indices in [0, 1297)"),
    ("repeated", "'indices' holds an index twice"),
])
def test_a_damaged_labeled_split_is_named_before_any_step(tmp_path, one_replica, digits,
                                                          damage, message):
    from mixmatch_tf.methods import ConfigError
    kwargs = dict(method="supervised", num_labeled=20, train_steps=1, eval_every=1)
    make(tmp_path, one_replica, digits, **kwargs).fit()
    path = tmp_path / "labeled_indices.npz"
    with np.load(path) as f:
        arrays = dict(f)
    if damage == "not_a_zip":
        path.write_bytes(b"PK\x03\x04 broken")
    else:
        arrays["indices"][0] = 10 ** 6 if damage == "out_of_range" else arrays["indices"][1]
        np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}/") + ".*" + re.escape(message)):
        make(tmp_path, one_replica, digits, **kwargs)


@pytest.mark.parametrize("content", ["[1, 2]", '{"pid": 1000000000000000000000000000000, '
                                     '"host": "' + socket.gethostname() + '"}', "{}", "null"])
def test_a_lock_file_that_names_no_live_holder_is_taken_over(trained, one_replica, digits,
                                                             content, caplog):
    (trained / "lock").write_text(content)
    tr = make(trained, one_replica, digits)  # the finished run: fit takes the lock
    assert tr.fit()["complete"] is True
    assert "Taking over the lock" in caplog.text and not (trained / "lock").exists()


def test_a_config_key_no_method_has_is_named(trained, one_replica, digits):
    settings = json.load(open(trained / "run.json"))
    settings["config"]["mixup_alphaa"] = 2.0  # hand-edited
    (trained / "run.json").write_text(json.dumps(settings))
    with pytest.raises(RunFolderError, match="config holds 'mixup_alphaa', not a setting of "
                                             "method 'erm'"):
        load_run(str(trained), strategy=one_replica, data=digits)
    with pytest.raises(RunFolderError, match="run.json: config holds 'mixup_alphaa', not a "
                                             "setting of method 'erm'; restore it"):
        make(trained, one_replica, digits)


def test_a_noise_mapping_is_recorded_in_ids_and_a_resume_must_keep_it(tmp_path, one_replica,
                                                                     digits):
    names = list(digits.class_names)
    run = {"noise_type": "asym", "noise_rate": 0.5,
           "noise_mapping": f"{names[2]}:{names[3]},3:2"}
    trainer = make(tmp_path, one_replica, digits, run=run)
    assert json.load(open(tmp_path / "run.json"))["noise_mapping"] == "2:3,3:2"
    y, noisy = digits.train_labels, np.asarray(trainer.train_labels)
    assert set(np.unique(y[noisy != y])) == {2, 3}
    with pytest.raises(ConfigError, match="noise_mapping='2:3,3:2', not '2:3'"):
        make(tmp_path, one_replica, digits, run=dict(run, noise_mapping="2:3"))
    with pytest.raises(ConfigError, match="noise_mapping.*'12' is not a class"):
        make(tmp_path / "new", one_replica, digits, run=dict(run, noise_mapping="2:12"))
    with pytest.raises(ConfigError, match="noise_mapping.*add --noise_type=asym"):
        RunConfig(model_dir="x", noise_type="sym", noise_rate=0.2, noise_mapping="2:3")
