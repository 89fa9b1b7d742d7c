"""DivideMix and Co-teaching: the GMM against scikit-learn, targets by hand, division
handling, clean labels never read, resume mid-run, replicas."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, checkpoint_weights, run_script
from mixmatch_tf import ops
from mixmatch_tf.methods import coteaching, dividemix
from mixmatch_tf.ops import gmm
from mixmatch_tf.training import RunConfig, Trainer


def _losses(seed, n=5000, noisy=0.5):
    rng = np.random.RandomState(seed)
    k = int(noisy * n)
    x = np.concatenate([rng.gamma(1.0, 0.05, n - k), 0.5 + rng.gamma(4.0, 0.08, k)])
    return (x - x.min()) / (x.max() - x.min())


@pytest.mark.parametrize("seed,noisy", [(0, 0.5), (1, 0.2), (2, 0.8), (3, 0.9)])
def test_gmm_matches_scikit_learn_from_the_same_start(seed, noisy):
    from sklearn.mixture import GaussianMixture
    x = _losses(seed, noisy=noisy)
    w0, m0, v0 = (t.numpy() for t in gmm.initial_parameters(x, 5e-4))
    ours = gmm.fit_gmm(x)
    sk = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4,
                         weights_init=w0, means_init=m0[:, None],
                         precisions_init=(1.0 / v0)[:, None, None]).fit(x[:, None])
    assert ours.n_iter == sk.n_iter_
    np.testing.assert_allclose(ours.means, sk.means_.ravel(), rtol=1e-6)
    np.testing.assert_allclose(ours.variances, sk.covariances_.ravel(), rtol=1e-6)
    prob, _ = gmm.clean_probability(x)
    expected = sk.predict_proba(x[:, None])[:, np.argmin(sk.means_.ravel())]
    np.testing.assert_allclose(prob, expected, atol=1e-4)
    # and the clean component is the one of small losses
    assert prob[x < 0.05].mean() > 0.9 and prob[x > 0.8].mean() < 0.1


def test_gmm_start_hand_values():
    w, m, v = (t.numpy() for t in gmm.initial_parameters([0.0, 0.1, 0.9, 1.0], reg_covar=0.0))
    np.testing.assert_allclose(m, [0.05, 0.95], rtol=1e-6)
    np.testing.assert_allclose(v, [0.0025, 0.0025], rtol=1e-4)
    np.testing.assert_allclose(w, [0.5, 0.5], rtol=1e-6)


def test_co_guessing_and_co_refinement_hand_values():
    # co-guessing: mean of 4 predictions, then sharpen with T = 0.5
    preds = tf.constant([[[0.6, 0.4]], [[0.8, 0.2]], [[0.4, 0.6]], [[0.6, 0.4]]])
    q = ops.sharpen(ops.guess_labels(preds), 0.5)
    np.testing.assert_allclose(q, [[0.36 / 0.52, 0.16 / 0.52]], rtol=1e-6)
    # co-refinement: w y + (1 - w) p with w = 0.75, then sharpen
    refined = ops.co_refine(tf.constant([[0.0, 1.0]]), tf.constant([0.75]),
                            tf.constant([[0.6, 0.4]]))
    np.testing.assert_allclose(refined, [[0.15, 0.85]], rtol=1e-6)
    np.testing.assert_allclose(ops.sharpen(refined, 0.5),
                               [[0.0225 / 0.745, 0.7225 / 0.745]], rtol=1e-5)


def _method(num_train=200, **config):
    from mixmatch_tf.methods.base import Context
    ctx = Context(num_classes=10, image_shape=(8, 8, 1), train_labels=np.zeros(num_train, int),
                  seed=0, model_fn=None)
    return dividemix.DivideMix(dividemix.Config(**config), ctx)


def test_empty_or_tiny_divisions_are_topped_up_not_fatal(caplog):
    m = _method(batch_size=8)
    prob = np.linspace(0, 0.4, 200)  # nobody above tau = 0.5
    labeled, unlabeled = m.divide(prob, "test")
    assert len(labeled) == 8 and set(labeled) == set(range(192, 200))
    assert len(unlabeled) == 200
    labeled, unlabeled = m.divide(np.full(200, 0.9), "test")  # nobody below
    assert len(labeled) == 200 and len(unlabeled) == 8
    assert "only 0 examples" in caplog.text


def _co_divide(losses, noisy, clean, **config):
    """One co-divide of a DivideMix whose networks' per-sample losses are ``losses``:
    (clean probability from net1's losses, net1's normalised losses)."""
    from mixmatch_tf.methods.base import Context
    ctx = Context(num_classes=int(noisy.max()) + 1, image_shape=(8, 8, 1), train_labels=noisy,
                  seed=0, model_fn=None, map_train_set=lambda fn: fn())
    m = dividemix.DivideMix(dividemix.Config(epochs=3.0, warmup_epochs=1.0, **config), ctx)
    n = len(noisy)
    state = {"division": {
        "prob1": tf.Variable(tf.zeros([n])), "prob2": tf.Variable(tf.zeros([n])),
        "history1": tf.Variable(tf.zeros([1, n])), "history2": tf.Variable(tf.zeros([1, n])),
        "history_count": tf.Variable(tf.zeros([], tf.int64)),
        "stats": tf.Variable(tf.fill([2, 8], -1.0)),
        "loss_hist": tf.Variable(tf.zeros([2, dividemix.HIST_BINS])),
        "loss_hist_epoch": tf.Variable(-1.0)},
        "settings": {name: tf.Variable(float(getattr(m.config, name)))
                     for name in dividemix.rule.CHOSEN}}
    m._loss_fns = {1: lambda: losses, 2: lambda: losses}
    m.co_divide(state)
    return state["division"]["prob1"].numpy(), state["division"]["history1"].numpy()[0]


def test_per_class_division_keeps_the_clean_examples_of_a_hard_class():
    """Class 0 is easy (clean loss ~0.1, noisy ~3), class 1 hard (clean ~2.5, noisy
    ~4.5): one GMM over all losses calls every clean example of class 1 noisy; one
    GMM per noisy-label class divides both classes."""
    rng = np.random.RandomState(0)
    noisy = np.repeat([0, 1], 400)
    clean = np.tile(np.repeat([True, False], 200), 2)
    centre = np.select([(noisy == 0) & clean, noisy == 0, clean], [0.1, 3.0, 2.5], 4.5)
    losses = centre + rng.uniform(-0.1, 0.1, 800)
    prob, _ = _co_divide(losses, noisy, clean)
    assert (prob[(noisy == 1) & clean] > 0.5).mean() < 0.05  # the failure
    assert (prob[(noisy == 0) & clean] > 0.5).all()
    prob, normalised = _co_divide(losses, noisy, clean, gmm_per_class=True)
    np.testing.assert_array_equal(prob > 0.5, clean)
    for c in (0, 1):  # min-max normalised within each class
        group = normalised[noisy == c]
        np.testing.assert_allclose([group.min(), group.max()], [0.0, 1.0], atol=1e-6)
        i = np.flatnonzero(noisy == c)
        expected = (losses[i] - losses[i].min()) / (losses[i].max() - losses[i].min())
        np.testing.assert_allclose(group, expected, rtol=1e-5, atol=1e-6)


def test_per_class_division_needs_labels_in_memory():
    from mixmatch_tf.methods.base import Context
    from mixmatch_tf.settings import ConfigError
    ctx = Context(num_classes=10, image_shape=(8, 8, 1), train_labels=None, seed=0,
                  model_fn=None, num_examples=100)
    m = dividemix.DivideMix(dividemix.Config(gmm_per_class=True), ctx)
    with pytest.raises(ConfigError, match="gmm_per_class.*streams"):
        m.build()


def test_small_loss_mask_hand_values():
    loss = tf.constant([0.5, 0.1, 0.9, 0.3])
    np.testing.assert_array_equal(coteaching.small_loss_mask(loss, tf.constant(2)), [0, 1, 0, 1])
    np.testing.assert_array_equal(coteaching.small_loss_mask(loss, tf.constant(0)), [0, 1, 0, 0])


SHORT = {"epochs": 3.0, "warmup_epochs": 1.0, "min_steps_per_epoch": 4}
SHORT_RUN = {"noise_type": "sym", "noise_rate": 0.5}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, one_replica, digits):
    """A short DivideMix run (warm-up + 2 epochs) on the noisy digits: (trainer, metrics)."""
    trainer = Trainer("dividemix", digits, RunConfig(
        model_dir=str(tmp_path_factory.mktemp("dividemix")), **SHORT_RUN), config=SHORT,
        strategy=one_replica)
    return trainer, trainer.fit()


def test_dividemix_runs_and_reports_division_diagnostics(short_run, digits):
    trainer, m = short_run
    # its epochs follow the divisions: the last epoch's estimate of the length is exact
    assert trainer.progress.total == m["steps"] == int(trainer.step)
    assert len(m["division_history"]) == 2 and len(m["evals"]) == 3  # after warm-up + 2 epochs
    div = m["division"]
    assert m["division_reference"] == "true labels"  # the package made the noise
    assert 0.5 < div["net1_auc"] <= 1.0 and 0 < div["net1_labeled"] < digits.num_train
    for key in ("net1_precision", "net1_recall", "net2_auc", "net2_labeled"):
        assert div[key] is not None


def test_a_run_stopped_at_its_last_step_finishes(tmp_path, one_replica, digits):
    """--stop_at_step at the run's last step: the last phase still ends the run (final
    evaluation, metrics.json, report). Epochs of the whole set ('all') make the length
    known in advance, whatever the divisions (whose counts may differ by a rounding
    between two runs)."""
    trainer = Trainer("dividemix", digits, RunConfig(model_dir=str(tmp_path), **SHORT_RUN),
                      config=dict(SHORT, min_steps_per_epoch="all"), strategy=one_replica)
    end = trainer.method.total_steps()
    trainer.run = dataclasses.replace(trainer.run, stop_at_step=end)
    metrics = trainer.fit(verbose=0)
    assert metrics["complete"] and metrics["steps"] == end
    assert metrics["evals"][-1]["step"] == end and "label_issues" in metrics
    assert os.path.isfile(tmp_path / "metrics.json")


def test_the_estimated_noise_rate_is_the_share_the_division_flags(short_run, digits):
    """metrics.json's noise estimate: the flagged share of the label-issue report (in all
    and per given class) against the true share of wrong labels (50% replaced at random
    over 10 classes: about 45% wrong)."""
    trainer, m = short_run
    est, issues = m["noise_estimate"], m["label_issues"]
    labels = np.asarray(trainer.train_labels)
    wrong = labels != digits.train_labels
    assert est["rate"] == pytest.approx(issues["flagged"] / issues["examples"])
    assert est["true_rate"] == pytest.approx(wrong.mean())
    assert est["error"] == pytest.approx(est["rate"] - est["true_rate"])
    names = list(digits.class_names)
    for c in range(10):
        assert est["per_class"][str(c)] == pytest.approx(
            issues["per_class"][names[c]] / np.sum(labels == c))
        assert est["true_per_class"][str(c)] == pytest.approx(wrong[labels == c].mean())
    assert abs(est["error"]) < 0.15, est  # three epochs of a small CNN


def test_a_finished_run_holds_its_label_issue_report(tmp_path, short_run, digits):
    """The table lists every example in index order, label_issues.csv the flagged ones by
    score; the summary's precision and recall are the table's against the true labels;
    the report made again from the run folder (load_run) is the same."""
    import csv
    from mixmatch_tf.training import load_run
    from mixmatch_tf.training.label_issues import label_issue_report
    trainer, m = short_run
    folder = trainer.run.model_dir
    table = list(csv.DictReader(open(os.path.join(folder, "label_table.csv"))))
    assert [int(r["index"]) for r in table] == list(range(digits.num_train))
    given = np.array([int(r["given_label"]) for r in table])
    np.testing.assert_array_equal(given, trainer.train_labels)
    flagged = np.array([r["flagged"] == "1" for r in table])
    clean = (np.array([float(r["clean_prob_net1"]) for r in table])
             + np.array([float(r["clean_prob_net2"]) for r in table])) / 2
    np.testing.assert_array_equal(flagged, clean <= SHORT.get("p_threshold", 0.5) + 1e-6)
    issues = list(csv.DictReader(open(os.path.join(folder, "label_issues.csv"))))
    assert len(issues) == flagged.sum() == m["label_issues"]["flagged"] > 0
    scores = [float(r["issue_score"]) for r in issues]
    assert scores == sorted(scores, reverse=True)
    wrong = given != digits.train_labels
    assert m["label_issues"]["precision"] == pytest.approx(wrong[flagged].mean())
    assert m["label_issues"]["recall"] == pytest.approx(flagged[wrong].mean())
    assert m["label_issues"]["precision"] > 0.55  # half the labels are wrong: chance is 0.5
    again = label_issue_report(load_run(folder, data=digits), output_dir=str(tmp_path))
    assert open(tmp_path / "label_table.csv").read() == open(
        os.path.join(folder, "label_table.csv")).read()
    assert again["line"] == m["label_issues"]["line"]


def test_tensorboard_gets_the_divisions_histograms_split_by_the_truth(short_run):
    from conftest import summary_tags
    tags = summary_tags(os.path.join(short_run[0].run.model_dir, "train"))
    for k in (1, 2):
        for name in ("clean_prob", "loss"):
            assert {f"division_hist/net{k}_{name}", f"division_hist/net{k}_{name}_of_clean",
                    f"division_hist/net{k}_{name}_of_noisy"} <= tags, sorted(tags)
    assert {"division/net1_auc", "division/noise_rate_estimate",
            "division/noise_rate_error", "division_hist/noise_rate_estimate_per_class",
            "division_hist/noise_rate_error_per_class"} <= tags


def test_every_co_divide_writes_the_report_and_a_grid_of_the_top_flagged(short_run, digits):
    """TensorBoard gets the grid at each co-divide and at the end; the last one is the
    digits of label_issues.csv's first rows, tiled six a row by hand, with a table saying
    which tile is which example."""
    import csv
    import tensorflow as tf
    trainer, m = short_run
    folder = trainer.run.model_dir
    grids = {}
    for name in tf.io.gfile.glob(os.path.join(folder, "train", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(name):
            for v in event.summary.value:
                if v.tag == "label_issues/top_flagged":
                    grids[event.step] = (v.metadata.summary_description,
                                         tf.make_ndarray(v.tensor))
    starts = [e["step"] for e in m["evals"]][:2]  # the co-divides: after warm-up, epoch 1
    assert sorted(grids) == starts + [m["steps"]], sorted(grids)
    assert m["label_issues"]["step"] == m["steps"]
    text, (_, _, encoded) = grids[m["steps"]]
    grid = tf.io.decode_png(encoded).numpy()
    issues = list(csv.DictReader(open(os.path.join(folder, "label_issues.csv"))))[:36]
    h, w, c = digits.image_shape
    rows = -(-len(issues) // 6)
    assert grid.shape == (rows * (h + 2) - 2, min(6, len(issues)) * (w + 2) - 2, c)
    for i, r in enumerate(issues):
        top, left = (i // 6) * (h + 2), (i % 6) * (w + 2)
        np.testing.assert_array_equal(grid[top:top + h, left:left + w],
                                      digits.train_images[int(r["index"])])
        assert (f"| {i // 6 + 1}.{i % 6 + 1} | {r['index']} | {r['given_class']} | "
                f"{r['predicted_class']} ({float(r['predicted_probability']):.2f}) |") in text


# The warm-up step alone is cross-entropy on two networks: the same step on one and two
# replicas is proven in the default suite by test_methods.py (DivideMix's warm-up streams
# and both networks) and test_training.py's ERM case (the small CNN with sync_bn), so
# that case runs with -m slow.
@pytest.mark.parametrize("warmup_epochs", [pytest.param(1.0, marks=pytest.mark.slow), 0.0])
def test_one_and_two_replicas_take_the_same_step(tmp_path, one_replica, two_replicas, digits,
                                                 warmup_epochs):
    """One warm-up step, or (no warm-up) the first co-divide and one DivideMix step of net1."""
    weights = []
    for name, strategy in (("one", one_replica), ("two", two_replicas)):
        run = RunConfig(model_dir=str(tmp_path / name), noise_type="sym", noise_rate=0.5,
                        sync_bn=True, stop_at_step=1, precision="float32")
        tr = Trainer("dividemix", digits, run,
                     config={"epochs": 2.0, "warmup_epochs": warmup_epochs}, strategy=strategy)
        assert tr.fit() == {"steps": 1, "complete": False}
        weights.append(tr.state["net1"].get_weights() + tr.state["net2"].get_weights()
                       + [tr.state["division"]["prob1"].numpy()])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_coteaching_on_two_replicas(tmp_path, two_replicas, digits):
    """Co-teaching with its small CNN (batch norm) mirrored over two replicas. That one
    and two replicas take the same steps is test_methods.py's coteaching case."""
    run = RunConfig(model_dir=str(tmp_path), noise_type="sym", noise_rate=0.4)
    m = Trainer("coteaching", digits, run, config={"train_steps": 6, "eval_every": 6},
                strategy=two_replicas).fit()
    assert m["num_replicas"] == 2 and np.isfinite(m["train_metrics"]["loss"])
    assert 0.0 < m["train_metrics"]["forget_rate"] <= 0.4
    # its label issues: the forget rate's share of largest mean loss, gathered over both
    # replicas in index order
    import csv
    table = list(csv.DictReader(open(tmp_path / "label_table.csv")))
    assert [int(r["index"]) for r in table] == list(range(digits.num_train))
    loss = np.array([float(r["loss_net1"]) + float(r["loss_net2"]) for r in table])
    flagged = np.array([r["flagged"] == "1" for r in table])
    assert flagged.sum() == round(m["train_metrics"]["forget_rate"] * digits.num_train)
    assert loss[flagged].min() >= loss[~flagged].max() - 1e-4


def test_dividemix_killed_mid_epoch_resumes_with_its_division(tmp_path):
    """Killed inside net1's first DivideMix epoch, the resumed run trains that epoch on the
    division it started with (restored, not re-made from the mid-epoch weights) and ends
    with the state of an uninterrupted run: every weight and the division itself (so a
    later co-divide would match too; several epochs of diagnostics are checked above)."""
    args = ["scripts/train.py", "--method=dividemix", "--dataset=digits", "--epochs=2",
            "--warmup_epochs=1", "--min_steps_per_epoch=10", "--checkpoint_every=7",
            "--noise_type=sym", "--noise_rate=0.5", "--seed=1", "--precision=float32"]
    killed = tmp_path / "killed"
    # The uninterrupted run and the one to kill start together (two cores, two processes).
    full_log = open(tmp_path / "full.log", "w")
    full = subprocess.Popen([sys.executable] + args + [f"--model_dir={tmp_path / 'full'}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=full_log)
    proc = subprocess.Popen([sys.executable] + args + [f"--model_dir={killed}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # warm-up is 11 steps; step 21 lies inside net1's first DivideMix epoch
        deadline = time.time() + 300
        while time.time() < deadline and not os.path.exists(killed / "ckpt" / "ckpt-21.index"):
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not os.path.exists(killed / "metrics.json")
    reader = tf.train.load_checkpoint(str(killed / "ckpt" / "ckpt-21"))
    assert reader.get_tensor("phase_index/.ATTRIBUTES/VARIABLE_VALUE") == 1  # net1's epoch
    assert reader.get_tensor("phase_step/.ATTRIBUTES/VARIABLE_VALUE") > 0  # mid-phase
    resumed = run_script(args + [f"--model_dir={killed}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert ", resuming at step " in resumed.stdout.splitlines()[0]  # the plan
    full.wait(timeout=600)
    full_log.close()
    assert full.returncode == 0, open(tmp_path / "full.log").read()[-2000:]
    a = json.load(open(tmp_path / "full" / "metrics.json"))
    b = json.load(open(killed / "metrics.json"))
    assert a["steps"] == b["steps"]
    assert len(a["division_history"]) == len(b["division_history"]) == 1
    for ea, eb in zip(a["division_history"], b["division_history"]):
        assert ea.keys() == eb.keys()
        for key in ea:
            assert ea[key] == pytest.approx(eb[key], abs=2e-3), key
    wa, wb = checkpoint_weights(tmp_path / "full"), checkpoint_weights(killed)
    assert wa.keys() == wb.keys() and any("division" in k for k in wa)
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-3, atol=1e-4, err_msg=k)


def test_coteaching_official_schedules_hand_values():
    # main.py with n_epoch 6, lr 1, forget_rate 0.5, num_gradual 3, epoch_decay_start 3:
    # alpha_plan[i] = (6 - i) / (6 - 3) from i = 3, beta1_plan 0.1 from i = 3,
    # rate_schedule[:3] = linspace(0, 0.5 ** exponent, 3), then 0.5.
    alpha, beta1, rate = coteaching.official_schedules(6, 1.0, 0.5, 3, 1.0, 3)
    np.testing.assert_allclose(alpha, [1, 1, 1, 1, 2 / 3, 1 / 3])
    np.testing.assert_allclose(beta1, [0.9, 0.9, 0.9, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(rate, [0, 0.25, 0.5, 0.5, 0.5, 0.5])
    _, _, rate = coteaching.official_schedules(6, 1.0, 0.5, 3, 2.0, 3)
    np.testing.assert_allclose(rate, [0, 0.125, 0.25, 0.5, 0.5, 0.5])  # c = 2: ends at 0.25
    # The CIFAR-10 run: n_epoch 200, epoch_decay_start 80, num_gradual 10, forget rate 0.5.
    alpha, beta1, rate = coteaching.official_schedules(200, 0.001, 0.5, 10, 1.0, 80)
    np.testing.assert_allclose([alpha[79], alpha[80], alpha[81], alpha[199]],
                               [0.001, 0.001, 0.001 * 119 / 120, 0.001 / 120])
    assert beta1[79] == 0.9 and beta1[80] == 0.1
    np.testing.assert_allclose([rate[1], rate[9], rate[10], rate[199]], [0.5 / 9, 0.5, 0.5, 0.5])


def _coteaching(**config):
    import keras
    from mixmatch_tf.methods import base
    ctx = base.Context(num_classes=3, image_shape=(2, 2, 1),
                       train_labels=np.arange(100) % 3, seed=0, noise_type="sym", noise_rate=0.5,
                       model_fn=lambda index=0: keras.Sequential([keras.Input((2, 2, 1)),
                                                          keras.layers.Flatten(),
                                                          keras.layers.Dense(3)]))
    method = coteaching.CoTeaching(coteaching.Config(batch_size=16, **config), ctx)
    return method, method.build()


def test_coteaching_sets_the_official_values_at_each_epoch():
    # n_epoch 6 -> epochs t = 1..5 are trained, each one pass of 100 // 16 = 6 full batches;
    # epoch_decay_start = 0.5 * 6 = 3; num_gradual 3; forget rate = the noise rate 0.5.
    method, state = _coteaching(epochs=6.0, lr_decay_start=0.5, num_gradual=3)
    assert method.total_steps() == 30
    expected = {  # t: (lr, beta_1, forget rate, int((1 - rate) * 16))
        1: (0.001, 0.9, 0.25, 12), 2: (0.001, 0.9, 0.5, 8), 3: (0.001, 0.1, 0.5, 8),
        4: (0.001 * 2 / 3, 0.1, 0.5, 8), 5: (0.001 / 3, 0.1, 0.5, 8)}
    for t, (lr, beta_1, rate, keep) in expected.items():
        phase = method.phase(t - 1, state, fresh=True)
        assert phase.steps == 6 and phase.evaluate_at_end
        for k in (1, 2):
            np.testing.assert_allclose(float(state[f"opt{k}"].learning_rate), lr, rtol=1e-6)
            np.testing.assert_allclose(float(state[f"opt{k}"].beta_1), beta_1, rtol=1e-6)
        np.testing.assert_allclose(float(state["schedule"]["forget_rate"]), rate, rtol=1e-6)
        assert int(state["schedule"]["keep"]) == keep
    assert method.phase(5, state, fresh=True) is None


def test_coteaching_adam_uses_the_epochs_beta_1():
    # With nothing forgotten, the first Adam moment after one step is (1 - beta_1) * g:
    # 0.1 g at epoch 1 (beta_1 0.9), 0.9 g at epoch 4 (beta_1 0.1), the same g in both.
    import keras
    batch = {"train": {"image": tf.random.stateless_normal([16, 2, 2, 1], [3, 4]),
                       "label": tf.constant(np.arange(16) % 3)}}
    moments = []
    for index in (0, 3):
        keras.utils.set_random_seed(7)
        method, state = _coteaching(epochs=6.0, lr_decay_start=0.5, forget_rate=0.0)
        method.phase(index, state, fresh=True)
        out = method.train_step(state, batch, tf.constant(0, tf.int64))
        assert float(out["beta_1"]) == pytest.approx([0.9, 0.1][index > 0])
        moments.append(np.concatenate([m.numpy().ravel() for m in state["opt1"]._momentums]))
    np.testing.assert_allclose(moments[1], 9.0 * moments[0], rtol=1e-4, atol=1e-7)


def test_an_epoch_of_each_network_is_its_labeled_side_or_as_long_as_erms():
    """min_steps_per_epoch: the official epoch, len(labeled) // B + 1 steps, at least the
    floor; 'all': N // B + 1 steps (ERM's epoch) whatever the division. 100 examples,
    batches of 16, 30 of them above tau in the peer's division."""
    import keras
    from mixmatch_tf.methods import base
    ctx = base.Context(num_classes=3, image_shape=(2, 2, 1),
                       train_labels=np.arange(100) % 3, seed=0, noise_type="sym", noise_rate=0.5,
                       model_fn=lambda index=0: keras.Sequential([keras.Input((2, 2, 1)),
                                                          keras.layers.Flatten(),
                                                          keras.layers.Dense(3)]))
    prob = np.where(np.arange(100) < 30, 0.9, 0.1).astype(np.float32)
    for floor, steps in ((1, 30 // 16 + 1), (4, 4), ("all", 100 // 16 + 1)):
        method = dividemix.DivideMix(dividemix.Config(
            batch_size=16, epochs=3.0, warmup_epochs=1.0, min_steps_per_epoch=floor,
            lambda_u=25.0, mixup_alpha=4.0, gmm_per_class=False), ctx)
        state = method.build()
        for k in (1, 2):
            state["division"][f"prob{k}"].assign(prob)
        assert [method.phase(i, state, fresh=False).steps for i in (1, 2, 3, 4)] == [steps] * 4
        assert method.total_steps() == method.warmup_steps() + 2 * 2 * max(
            steps if floor == "all" else floor, 100 // 32 + 1)
    # each phase re-estimates the steps after it from the latest division: net1 trains
    # on net2's (50 labeled: 4 steps), net2 on net1's (30: 2 steps)
    method = dividemix.DivideMix(dataclasses.replace(method.config, min_steps_per_epoch=1),
                                 ctx)
    state = method.build()
    state["division"]["prob1"].assign(prob)
    state["division"]["prob2"].assign(np.where(np.arange(100) < 50, 0.9, 0.1))
    phases = [method.phase(i, state, fresh=False) for i in (1, 2, 3, 4)]
    assert [p.steps for p in phases] == [4, 2, 4, 2]
    assert [p.steps_after for p in phases] == [4 + 2 * 2, 4 + 2, 2, 0]


def test_the_learning_rate_decays_where_given_or_halfway_after_the_warm_up():
    """lr_decay_at None: at (warm-up + epochs) / 2, the digits' 60 with 20 of warm-up at
    epoch 40; given fractions count over all epochs (official: 150 of 300)."""
    def rates(**config):
        method = dividemix.DivideMix(dividemix.Config(**config), None)
        return [round(method.learning_rate(e), 6) for e in (0, 29, 30, 39, 40, 59)]
    assert rates(epochs=60.0, warmup_epochs=20.0, lr_decay_at=None) == [0.02] * 4 + [0.002] * 2
    assert rates(epochs=60.0, warmup_epochs=20.0) == [0.02] * 2 + [0.002] * 4
    assert rates(epochs=60.0, warmup_epochs=0.0, lr_decay_at=None) == [0.02] * 2 + [0.002] * 4
    assert rates(epochs=60.0, warmup_epochs=20.0, lr_decay_at=(0.25, 0.5)) == [
        0.02, 0.002, 0.0002, 0.0002, 0.0002, 0.0002]


def test_the_settings_rule_on_hand_computed_estimates():
    """The division flags 2, 3 and 7; the networks predict otherwise than given at 2, 3
    and 7 (noise 3/8) and as given on the whole clean side (fit 1)."""
    from mixmatch_tf.methods import dividemix_rule as rule
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([0, 0, 1, 1, 1, 1, 1, 0])
    prob = np.array([0.9, 0.8, 0.1, 0.2, 0.95, 0.7, 0.6, 0.5])  # tau 0.5: 7 is flagged
    est = rule.estimate(prob, labels, predicted, 2, 0.5)
    assert est == {"noise_rate": 0.375, "noise_per_class": {"0": 0.5, "1": 0.25},
                   "fit": 1.0, "class_dependence": -1.0, "smallest_class": 4}
    # one clean-side label predicted otherwise: fit 4/5
    est_miss = rule.estimate(prob, labels, np.where(np.arange(8) == 0, 1, predicted), 2, 0.5)
    assert est_miss["fit"] == 0.8 and est_miss["noise_rate"] == 0.5
    none = dict.fromkeys(rule.CHOSEN)
    assert rule.choose(est, none) == {"gmm_per_class": False, "lambda_u": 25.0,
                                      "mixup_alpha": 4.0}
    # a given setting is never chosen
    assert rule.choose(est, dict(none, lambda_u=7.0)) == {"gmm_per_class": False,
                                                         "mixup_alpha": 4.0}
    # big classes: one GMM each, up to 60% noise; the official table's rows
    assert rule.choose(dict(est, smallest_class=20), none)["gmm_per_class"] is True
    assert rule.choose(dict(est, smallest_class=20, noise_rate=0.6),
                       none)["gmm_per_class"] is True
    assert rule.choose(dict(est, smallest_class=20, noise_rate=0.61),
                       none)["gmm_per_class"] is False
    assert rule.choose(dict(est, noise_rate=0.35), none)["lambda_u"] == 0.0
    assert rule.choose(dict(est, noise_rate=0.85), none)["lambda_u"] == 25.0
    assert rule.choose(dict(est, noise_rate=0.86), none)["lambda_u"] == 50.0
    # noise that looks class-dependent, read where the smallest class is expected to
    # hold 10 disagreeing labels (0.375 x 27 = 10.1): hard, as the official asymmetric
    # row (lambda_u 0) and the real-world data sets (alpha 0.5)
    swaps = dict(est, smallest_class=27)
    assert rule.choose(dict(swaps, class_dependence=0.5), none) == {
        "gmm_per_class": True, "lambda_u": 0.0, "mixup_alpha": 0.5}
    assert rule.choose(dict(swaps, class_dependence=0.49), none) == {
        "gmm_per_class": True, "lambda_u": 25.0, "mixup_alpha": 4.0}
    assert rule.choose(dict(swaps, class_dependence=0.9, noise_rate=0.86), none) == {
        "gmm_per_class": False, "lambda_u": 0.0, "mixup_alpha": 0.5}
    # too few disagreeing labels in the smallest class (0.375 x 26 = 9.75): not read
    assert rule.choose(dict(swaps, class_dependence=1.0, smallest_class=26), none) == {
        "gmm_per_class": True, "lambda_u": 25.0, "mixup_alpha": 4.0}
    # data hard for the network (fit < 0.92 at noise <= 0.6): lambda_u 0, alpha 0.5
    hard = {"gmm_per_class": False, "lambda_u": 0.0, "mixup_alpha": 0.5}
    assert rule.choose(dict(est, fit=0.91, noise_rate=0.6), none) == hard
    assert rule.choose(dict(est, fit=0.91, noise_rate=0.61), none)["mixup_alpha"] == 4.0
    assert rule.choose(dict(est, fit=0.92, noise_rate=0.5), none)["mixup_alpha"] == 4.0


def test_class_dependence_is_how_concentrated_the_confusion_of_disagreeing_labels_is():
    """Four classes: the top predicted class of each given class holds 2 + 1 + 2 of the
    6 disagreements, (5/6 - 1/3) / (1 - 1/3) = 0.75; pairs swapped: 1; spread evenly
    over the other classes: 0; two classes or no disagreement: unknown (-1)."""
    from mixmatch_tf.methods import dividemix_rule as rule
    assert rule.class_dependence(np.array([0, 0, 0, 1, 2, 2]), np.array([1, 1, 2, 0, 3, 3]),
                                 4) == pytest.approx(0.75)
    assert rule.class_dependence(np.array([0, 1, 1, 3]), np.array([1, 0, 0, 2]), 4) == 1.0
    assert rule.class_dependence(np.array([0, 0, 0, 1, 1, 1]), np.array([1, 2, 3, 0, 2, 3]),
                                 4) == 0.0
    assert rule.class_dependence(np.array([0, 1]), np.array([1, 0]), 2) == -1.0
    assert rule.class_dependence(np.array([], int), np.array([], int), 4) == -1.0
    # through estimate: given 0 0 1 1 2 2, predicted 1 0 1 1 0 2 -> disagreements (0, 1)
    # and (2, 0), each its class's only one: 1
    est = rule.estimate(np.full(6, 0.9), np.array([0, 0, 1, 1, 2, 2]),
                        np.array([1, 0, 1, 1, 0, 2]), 3, 0.5)
    assert est["class_dependence"] == 1.0 and est["noise_rate"] == pytest.approx(1 / 3)


def test_settings_left_to_the_data_are_chosen_once_recorded_and_kept_on_resume(
        tmp_path, one_replica, digits):
    """A bare DivideMix on the digits chooses at its first co-divide: the rule's values
    for its recorded estimates, in the state the step reads, in run.json and
    metrics.json; a resume reads them from the checkpoint and does not choose again."""
    import json
    from mixmatch_tf.methods import dividemix_rule as rule
    run = RunConfig(model_dir=str(tmp_path), precision="float32", **SHORT_RUN)
    a = Trainer("dividemix", digits, run, config=SHORT, strategy=one_replica)
    assert {name: getattr(a.config, name) for name in rule.CHOSEN} == dict.fromkeys(rule.CHOSEN)
    first_divide = a.method.warmup_steps() + 1
    a.run = dataclasses.replace(a.run, stop_at_step=first_divide)
    a.fit(verbose=0)
    chosen = a.method.chosen_settings(a.state)
    est = chosen.pop("estimates")
    expected = rule.choose(dict(est, noise_per_class={}), dict.fromkeys(rule.CHOSEN))
    assert chosen == {k: rule.typed(k, v) for k, v in expected.items()}
    assert est["smallest_class"] == np.bincount(a.train_labels).min()
    assert 0.0 <= est["noise_rate"] <= 1.0 and 0.0 <= est["fit"] <= 1.0
    assert 0.0 <= est["class_dependence"] <= 1.0
    assert json.load(open(tmp_path / "run.json"))["chosen"] == dict(chosen, estimates=est)
    for name in rule.CHOSEN:
        assert float(a.state["settings"][name].numpy()) == float(chosen[name])
    b = Trainer("dividemix", digits, RunConfig(model_dir=str(tmp_path), precision="float32",
                                               **SHORT_RUN), config=SHORT, strategy=one_replica)
    assert int(b.step) == first_divide
    b.method.choose = None  # never called again
    metrics = b.fit(verbose=0)
    assert metrics["chosen_settings"] == dict(chosen, estimates=est)


def test_a_checkpoint_from_before_the_chosen_settings_resumes_with_the_configs(
        tmp_path, one_replica, digits):
    """A DivideMix checkpoint written before the state held its settings (an older
    version) resumes: the settings keep the run config's values, which that version
    trained with, and the run trains on to its end."""
    config = dict(SHORT, lambda_u=5.0, mixup_alpha=2.0, gmm_per_class=False)
    run = RunConfig(model_dir=str(tmp_path), precision="float32", **SHORT_RUN)
    a = Trainer("dividemix", digits, run, config=config, strategy=one_replica)
    stop = a.method.warmup_steps() + 2
    a.run = dataclasses.replace(a.run, stop_at_step=stop)
    a.fit(verbose=0)
    prefix = a.run_dir.latest_checkpoint()
    older = {k: v for k, v in a.state.items() if k not in ("settings", "settings_estimates")}
    written = a.counters.checkpoint(a.method, older)  # as the older version wrote it
    written.save_counter.assign(a.checkpoint.save_counter)
    written.write(prefix)
    b = Trainer("dividemix", digits, run, config=config, strategy=one_replica)
    assert int(b.step) == stop
    assert {k: float(v.numpy()) for k, v in b.state["settings"].items()} == {
        "gmm_per_class": 0.0, "lambda_u": 5.0, "mixup_alpha": 2.0}
    assert b.fit(verbose=0)["complete"]


def test_a_checkpoint_from_before_the_class_dependence_estimate_keeps_its_chosen_settings(
        tmp_path, one_replica, digits):
    """A checkpoint whose state held three estimates (``settings_evidence``, before the
    class dependence) resumes with the settings it chose; its estimates are not reported
    (the checkpoint holds none under the current name) rather than misread."""
    run = RunConfig(model_dir=str(tmp_path), precision="float32", **SHORT_RUN)
    a = Trainer("dividemix", digits, run, config=SHORT, strategy=one_replica)
    stop = a.method.warmup_steps() + 1
    a.run = dataclasses.replace(a.run, stop_at_step=stop)
    a.fit(verbose=0)
    chosen = a.method.chosen_settings(a.state)
    chosen.pop("estimates")
    older = {k: v for k, v in a.state.items() if k != "settings_estimates"}
    older["settings_evidence"] = tf.Variable(a.state["settings_estimates"].numpy()[[0, 1, 3]])
    written = a.counters.checkpoint(a.method, older)  # as the older version wrote it
    written.save_counter.assign(a.checkpoint.save_counter)
    written.write(a.run_dir.latest_checkpoint())
    b = Trainer("dividemix", digits, run, config=SHORT, strategy=one_replica)
    assert int(b.step) == stop
    assert b.method.chosen_settings(b.state) == chosen
