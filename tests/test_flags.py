"""Command-line flags: invalid values are refused before any work, naming the flag."""
import dataclasses
import os
import re

import pytest
from absl import app

from conftest import ROOT, run_script
from mixmatch_tf.flags import common as cli
from mixmatch_tf.methods import TrainConfig, get_method, method_names

if "method" not in cli.FLAGS:  # tests/test_bad_input.py may have defined them already
    cli.define_train_flags()
FLAGS = cli.FLAGS

CASES = [
    (["--method=mixmatchx"], "--method=mixmatchx: unknown method; valid: "),
    (["--dataset=imagenet"], "--dataset=imagenet: unknown dataset; valid: digits"),
    (["--model=vgg16"], "--model=vgg16: unknown model; valid: "),
    (["--mixup_alpha=0"], "--mixup_alpha=0.0: must be in (0, 1e6], got 0.0"),
    (["--method=erm", "--mixup_alpha=2"], "--mixup_alpha=2.0: does not apply to method 'erm'"),
    (["--noise_type=sym", "--noise_rate=1.5"], "--noise_rate=1.5: must be in [0, 1]"),
    (["--noise_rate=0.5"], "--noise_rate=0.5: is 0.5 but --noise_type is not set"),
    (["--batch_size=-4"], "--batch_size=-4: must be in [1, 65536], got -4"),
    (["--dataset=npz:/no/such/file.npz"], "file '/no/such/file.npz' does not exist"),
    (["--lr_decay_at=0.5,x"], "--lr_decay_at"),
    (["--lr_decay_at=1.5"], "--lr_decay_at=['1.5']: must be in (0, 1), got [1.5]"),
]


def parse(args):
    FLAGS.unparse_flags()
    FLAGS(["train.py"] + args)
    cli.validate_names()
    return cli.resolve(FLAGS.dataset)


@pytest.mark.parametrize("args,expected", CASES)
def test_bad_flags_are_refused_with_the_flag_named(args, expected):
    with pytest.raises(app.UsageError) as e:
        parse(args)
    assert expected in str(e.value)


def test_method_flags_come_from_the_configs_and_defaults_depend_on_the_data():
    method, config, run = parse(["--method=erm", "--seed=4"])
    assert method.name == "erm" and config.model == "small_cnn" and config.epochs == 60
    assert run.model_dir == "runs/erm-digits-seed4"
    _, config, _ = parse(["--method=erm", "--dataset=cifar10", "--learning_rate=0.05"])
    assert config.epochs == 200 and config.learning_rate == 0.05 and config.model is None


PRESET_DIR = os.path.join(ROOT, "flags", "presets")
PRESETS = sorted(os.path.relpath(os.path.join(d, f), PRESET_DIR)[:-4]
                 for d, _, files in os.walk(PRESET_DIR) for f in files if f.endswith(".cfg"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_parses_into_a_valid_config(preset, monkeypatch):
    monkeypatch.chdir(ROOT)  # presets nest flagfiles by repository-relative paths
    method, config, run = parse([f"--flagfile=flags/presets/{preset}.cfg"])
    if "/" not in preset:
        assert preset.replace("cifar10n", "cifar10").startswith(method.name.replace("_ssl", ""))


def test_suites_reference_existing_presets():
    from mixmatch_tf.reproduce import SUITES
    for suite in SUITES.values():
        for spec in suite.make_runs([0]):
            for k, v in spec.flags:
                if k == "flagfile":
                    assert os.path.isfile(os.path.join(ROOT, v)), (suite.name, v)


def _suite_argv_on_digits(spec):
    # Data sets built by a script (npz:...) are not in a fresh clone: parse such rows on
    # the digits, whose data always exists.
    return ["--dataset=digits" if a.startswith("--dataset=npz:") else a
            for a in spec.argv("/tmp/unused")]


def test_every_suite_run_parses_into_a_valid_config(monkeypatch):
    """A misspelt flag or value in a suite row fails here, not hours into a suite."""
    from mixmatch_tf.reproduce import SUITES
    monkeypatch.chdir(ROOT)  # suites name presets by repository-relative paths
    for suite in SUITES.values():
        for spec in suite.make_runs([0]):
            parse(_suite_argv_on_digits(spec))
    fashion = {s.row: s for s in SUITES["fashion_noisy"].make_runs([0]) if s.column == "sym 50%"}
    _, config, run = parse(_suite_argv_on_digits(fashion["DivideMix (per-class GMM)"]))
    assert (config.gmm_per_class, config.mixup_alpha, config.lambda_u) == (True, 0.5, 0.0)
    assert (config.epochs, config.warmup_epochs, config.lr_decay_at) == (120, 10, (0.75,))
    assert (run.noise_type, run.noise_rate) == ("sym", 0.5)


def test_the_warm_up_confidence_penalty_follows_the_official_code_only_on_its_data_sets():
    """Off on data sets of no paper's table even with synthetic asymmetric noise (the
    settings from the data must not read how the noise was made), on in the CIFAR-10
    asymmetric preset; the suites' official-settings rows turn it on for asymmetric noise."""
    from mixmatch_tf.methods import dividemix
    from mixmatch_tf.methods.base import Context
    from mixmatch_tf.reproduce import SUITES
    for argv, on in ((["--method=dividemix", "--noise_type=asym", "--noise_rate=0.4"], False),
                     (["--method=dividemix", "--noise_type=asym", "--noise_rate=0.4",
                       "--confidence_penalty"], True),
                     ([f"--flagfile={ROOT}/flags/presets/dividemix_cifar10_asym40.cfg"], True)):
        _, config, run = parse(argv)
        ctx = Context(num_classes=10, image_shape=(8, 8, 1), train_labels=None, seed=0,
                      model_fn=None, noise_type=run.noise_type, noise_rate=run.noise_rate)
        assert dividemix.DivideMix(config, ctx).penalize_confidence() is on, argv
    official = [spec for name in ("digits_noisy", "dividemix_settings")
                for spec in SUITES[name].make_runs([0])
                if spec.row in ("DivideMix", "DivideMix (official settings)")]
    assert len(official) == 10
    for spec in official:
        flags = dict(spec.flags)
        assert (flags.get("confidence_penalty") == "true") == (flags["noise_type"] == "asym")


def test_preset_values():
    _, config, _ = parse([f"--flagfile={ROOT}/flags/presets/mixup_cifar10.cfg"])
    assert config.model == "preact_resnet18" and config.mixup_alpha == 1.0
    assert config.lr_decay_at == (0.5, 0.75) and config.weight_decay == 1e-4
    _, config, run = parse([f"--flagfile={ROOT}/flags/presets/dividemix_cifar10_sym90.cfg"])
    assert (config.lambda_u, config.p_threshold, config.loss_history) == (50.0, 0.6, 5)
    assert (run.noise_type, run.noise_rate) == ("sym", 0.9)
    _, config, run = parse([f"--flagfile={ROOT}/flags/presets/mixmatch_svhn_250.cfg"])
    assert (config.lambda_u, config.num_labeled, run.normalization) == (250.0, 250, "symmetric")


def test_the_script_exits_with_the_message_before_any_work(tmp_path):
    out = run_script(["scripts/train.py", f"--model_dir={tmp_path}/run", "--mixup_alpha=-1"],
                     timeout=120)
    assert out.returncode != 0
    assert "Invalid flag --mixup_alpha=-1.0: must be in (0, 1e6], got -1.0" in out.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- official values per preset
# Written by hand from the official scripts (never from our presets), so that a preset or a
# Config default drifting from the official run fails here. Keys are our fields (resolved
# config, or the run flags ``normalization``/``noise_type``/``noise_rate``/``label_set``).
#
# google-research/mixmatch: libml/train.py sets --batch 64, the method files set --lr 0.002,
# --ema 0.999, --train_kimg 1<<16 (2^26 images = 2^20 steps of 64), libml --report_kimg 64
# (an evaluation every 1024 steps); mixmatch.py ramps w_match over warmup_kimg=1024 (16,384
# steps), T=0.5, nu=2; the baselines ramp their weight over warmup_pos=0.4 of training;
# third_party/vat_utils.py xi=1e-6.
_SSL = dict(batch_size=64, learning_rate=0.002, ema_decay=0.999, train_steps=(1 << 26) // 64,
            eval_every=(64 << 10) // 64, normalization="symmetric")
_MIXMATCH = dict(_SSL, rampup_steps=(1024 << 10) // 64, sharpen_temperature=0.5,
                 num_augmentations=2)


def _mixmatch(dataset, labels, wd, alpha, w_match, model="wrn28_2"):
    return dict(_MIXMATCH, dataset=dataset, num_labeled=labels, weight_decay=wd,
                mixup_alpha=alpha, lambda_u=w_match, model=model)


_OFFICIAL_MIXMATCH = {
    # runs/table5.sh: mixmatch.py --wd=0.02 --beta=0.75 --w_match=75 (cifar10.${seed}@${size}-1)
    **{f"mixmatch_cifar10_{n}": _mixmatch("cifar10", n, 0.02, 0.75, 75.0)
       for n in (250, 500, 1000, 2000, 4000)},
    # runs/table6.sh: mixmatch.py --wd=0.02 --beta=0.75 --w_match=250 (svhn_noextra)
    **{f"mixmatch_svhn_{n}": _mixmatch("svhn_cropped", n, 0.02, 0.75, 250.0)
       for n in (250, 500, 1000, 2000, 4000)},
    # runs/table2.sh: mixmatch.py --beta=0.75 --w_match=50 --scales=4 [default --wd=0.02]
    "mixmatch_stl10_1000": _mixmatch("stl10", 1000, 0.02, 0.75, 50.0),
    # runs/table1.sh: mixmatch.py --dataset=cifar100.${seed}@10000-1 --w_match=150
    #   --wd=0.04 --beta=0.75 --filters=135
    "mixmatch_cifar100_10000": _mixmatch("cifar100", 10000, 0.04, 0.75, 150.0, "wrn28_large"),
}
_CIFAR10_4000 = dict(_SSL, dataset="cifar10", num_labeled=4000, model="wrn28_2",
                     warmup_fraction=0.4)
_OFFICIAL_BASELINES = {
    # runs/table5.sh: mean_teacher.py --wd=0.2 --consistency_weight=50 (mean_teacher.py
    # warmup_pos 0.4)
    "mean_teacher_cifar10_4000": dict(_CIFAR10_4000, weight_decay=0.2, consistency_weight=50.0),
    # runs/table5.sh: pi_model.py --wd=0.02 --consistency_weight=20
    "pi_model_cifar10_4000": dict(_CIFAR10_4000, weight_decay=0.02, consistency_weight=20.0),
    # runs/table5.sh: pseudo_label.py --wd=0.02 --consistency_weight=1 (threshold 0.95)
    "pseudo_label_cifar10_4000": dict(_CIFAR10_4000, weight_decay=0.02, consistency_weight=1.0,
                                      threshold=0.95),
    # runs/table5.sh: vat.py --wd=0.02 (vat.py: vat 0.3, vat_eps 6, entmin_weight 0.06;
    # vat_utils.py xi 1e-6)
    "vat_cifar10_4000": dict(_CIFAR10_4000, weight_decay=0.02, consistency_weight=0.3,
                             vat_eps=6.0, vat_xi=1e-6, entmin_weight=0.06),
    # runs/table5.sh: mixup.py --wd=0.02 --beta=0.75 (loss_xe + loss_xeu, no ramp)
    "mixup_ssl_cifar10_4000": dict(_SSL, dataset="cifar10", num_labeled=4000, model="wrn28_2",
                                   weight_decay=0.02, mixup_alpha=0.75, consistency_weight=1.0),
    # fully_supervised/fs_baseline.py defaults (--wd 0.02, --ema 0.999, --batch 64, --lr 0.002),
    # here on the 4000 labels only
    "supervised_cifar10_4000": dict(_SSL, dataset="cifar10", num_labeled=4000, model="wrn28_2",
                                    weight_decay=0.02),
}

# LiJunnan1992/DivideMix Train_cifar.py: --batch_size 64 (warm-up loader batch_size*2),
# --lr 0.02, SGD momentum 0.9 weight_decay 5e-4, --alpha 4, --T 0.5, --num_epochs 300, lr /10
# from epoch 150, warm_up 10 (cifar10) / 30 (cifar100), linear_rampup over 16 epochs, loss
# averaged over the last 5 epochs if r == 0.9, confidence penalty if noise_mode == 'asym'.
# lambda_u and p_threshold per setting: the DivideMix paper, Section 4.1 / Appendix (see
# docs/official_settings.md): CIFAR-10 sym 20/50/80/90%: 0/25/25/50, asym 40%: 0;
# CIFAR-100 sym 20/50/80/90%: 25/150/150/150; tau 0.5, 0.6 at 90%.
_DIVIDEMIX = dict(model="preact_resnet18", batch_size=64, warmup_batch_size=128,
                  learning_rate=0.02, momentum=0.9, weight_decay=5e-4, epochs=300.0,
                  lr_decay_at=(0.5,), lr_decay_factor=0.1, mixup_alpha=4.0,
                  sharpen_temperature=0.5, rampup_epochs=16.0, lambda_prior=1.0)


def _dividemix(dataset, noise, rate, lambda_u, tau, history=1):
    return dict(_DIVIDEMIX, dataset=dataset, noise_type=noise, noise_rate=rate,
                warmup_epochs={"cifar10": 10.0, "cifar100": 30.0}[dataset], lambda_u=lambda_u,
                p_threshold=tau, loss_history=history,
                confidence_penalty=True if noise == "asym" else None)


_OFFICIAL_DIVIDEMIX = {
    "dividemix_cifar10_sym20": _dividemix("cifar10", "sym", 0.2, 0.0, 0.5),
    "dividemix_cifar10_sym50": _dividemix("cifar10", "sym", 0.5, 25.0, 0.5),
    "dividemix_cifar10_sym80": _dividemix("cifar10", "sym", 0.8, 25.0, 0.5),
    "dividemix_cifar10_sym90": _dividemix("cifar10", "sym", 0.9, 50.0, 0.6, history=5),
    "dividemix_cifar10_asym40": _dividemix("cifar10", "asym", 0.4, 0.0, 0.5),
    "dividemix_cifar100_sym20": _dividemix("cifar100", "sym", 0.2, 25.0, 0.5),
    "dividemix_cifar100_sym50": _dividemix("cifar100", "sym", 0.5, 150.0, 0.5),
    "dividemix_cifar100_sym80": _dividemix("cifar100", "sym", 0.8, 150.0, 0.5),
    "dividemix_cifar100_sym90": _dividemix("cifar100", "sym", 0.9, 150.0, 0.6, history=5),
    # CIFAR-N is not in the paper: Train_cifar.py's settings, lambda_u / tau are our choice.
    **{f"dividemix_cifar10n_{s}": dict(_DIVIDEMIX, dataset="cifar10_n", label_set=s,
                                       warmup_epochs=10.0)
       for s in ("aggre_label", "random_label1", "worse_label")},
    "dividemix_cifar100n_noise_label": dict(_DIVIDEMIX, dataset="cifar100_n",
                                            label_set="noise_label", warmup_epochs=30.0),
}

# facebookresearch/mixup-cifar10 train.py: --lr 0.1, --batch-size 128, --epoch 200,
# --decay 1e-4, --alpha 1, SGD momentum 0.9, lr /10 at epochs 100 and 150.
_MIXUP_CIFAR10 = dict(dataset="cifar10", model="preact_resnet18", learning_rate=0.1,
                      batch_size=128, epochs=200.0, momentum=0.9, lr_decay_at=(0.5, 0.75),
                      lr_decay_factor=0.1)
_OFFICIAL_MIXUP = {
    "mixup_cifar10": dict(_MIXUP_CIFAR10, weight_decay=1e-4, mixup_alpha=1.0),
    "erm_cifar10": dict(_MIXUP_CIFAR10, weight_decay=1e-4),  # train.py with --alpha 0
}

# bhanML/Co-teaching main.py: --lr 0.001 (Adam, no weight decay), batch_size 128,
# n_epoch 200 and epoch_decay_start 80 for cifar10, --num_gradual 10, --exponent 1,
# forget_rate None -> the noise rate.
_OFFICIAL_COTEACHING = {
    "coteaching_cifar10_sym50": dict(dataset="cifar10", noise_type="sym", noise_rate=0.5,
                                     learning_rate=0.001, weight_decay=0.0, batch_size=128,
                                     epochs=200.0, num_gradual=10, exponent=1.0,
                                     lr_decay_start=80 / 200, forget_rate=None),
}

OFFICIAL = {**_OFFICIAL_MIXMATCH, **_OFFICIAL_BASELINES, **_OFFICIAL_DIVIDEMIX,
            **_OFFICIAL_MIXUP, **_OFFICIAL_COTEACHING}

# The mixup paper's Table 1 (ImageNet-2012), section 3.1: "data-parallel distributed training
# in Caffe2 with a minibatch size of 1,024 ... the learning rate is increased linearly from 0.1
# to 0.4 during the first 5 epochs, and it is then divided by 10 after 30, 60 and 80 epochs when
# training for 90 epochs; or after 60, 120 and 180 epochs when training for 200 epochs";
# alpha 0.2 for the ResNets, 0.4 for the ResNeXts (Table 1). Momentum 0.9 and weight decay
# 1e-4, not applied to batch norm's gamma and beta, are Goyal et al.'s (the schedule the paper
# cites; the paper states neither). ERM rows: the same recipe without mixup.
_IMAGENET = dict(dataset="imagenet2012", batch_size=1024, learning_rate=0.4,
                 lr_warmup_epochs=5.0, lr_warmup_from=0.1, momentum=0.9, weight_decay=1e-4,
                 weight_decay_bn=False, lr_decay_factor=0.1)
_IMAGENET_DECAY = {90: (30.0, 60.0, 80.0), 200: (60.0, 120.0, 180.0)}
_TABLE1 = [("resnet50", 0.2, 90), ("resnet101", 0.2, 90), ("resnext101_32x4d", 0.4, 90),
           ("resnext101_64x4d", 0.4, 90), ("resnet50", 0.2, 200), ("resnet101", 0.2, 200),
           ("resnext101_32x4d", 0.4, 200)]
PAPER_IMAGENET = {}
for _model, _alpha, _epochs in _TABLE1:
    _cell = dict(_IMAGENET, model=_model, epochs=float(_epochs),
                 lr_decay_epochs=_IMAGENET_DECAY[_epochs])
    PAPER_IMAGENET[f"mixup_imagenet/erm_{_model}_{_epochs}ep"] = dict(_cell, method="erm")
    PAPER_IMAGENET[f"mixup_imagenet/mixup_{_model}_{_epochs}ep"] = dict(
        _cell, method="mixup", mixup_alpha=_alpha)

# Figure 3 (CIFAR), section 3.2: "200 epochs ... 128 examples per minibatch ... Learning rates
# start at 0.1 and are divided by 10 after 100 and 150 epochs for all models except WideResNet.
# For WideResNet, we follow (Zagoruyko & Komodakis, 2016a) and divide the learning rate by 10
# after 60, 120 and 180 epochs. Weight decay is set to 10^-4. We do not use dropout"; alpha 1;
# SGD momentum 0.9 (mixup-cifar10's train.py).
PAPER_CIFAR_ARCHS = {}
for _dataset in ("cifar10", "cifar100"):
    for _model in ("preact_resnet18", "wrn28_10", "densenet_bc_190"):
        _cell = dict(dataset=_dataset, model=_model, batch_size=128, learning_rate=0.1,
                     momentum=0.9, weight_decay=1e-4, weight_decay_bn=True, epochs=200.0,
                     lr_decay_factor=0.1, dropout=0.0, lr_warmup_epochs=0.0)
        if _model == "wrn28_10":
            _cell["lr_decay_epochs"] = (60.0, 120.0, 180.0)
        else:
            _cell.update(lr_decay_at=(0.5, 0.75), lr_decay_epochs=())
        PAPER_CIFAR_ARCHS[f"mixup_cifar_archs/erm_{_model}_{_dataset}"] = dict(_cell, method="erm")
        PAPER_CIFAR_ARCHS[f"mixup_cifar_archs/mixup_{_model}_{_dataset}"] = dict(
            _cell, method="mixup", mixup_alpha=1.0)
# Presets of our own (the bundled digits), with no official counterpart.
OWN_PRESETS = {"mixmatch_digits", "dividemix_digits_sym50"}


def _resolved(preset):
    """{field: value} of a preset: the resolved method config plus the run flags."""
    _, config, run = parse([f"--flagfile=flags/presets/{preset}.cfg"])
    values = dict(vars(config))
    values.update(dataset=FLAGS.dataset, normalization=run.normalization,
                  noise_type=run.noise_type, noise_rate=run.noise_rate,
                  label_set=run.label_set)
    return values


def test_every_preset_has_official_values():
    top_level = {p for p in PRESETS if "/" not in p}
    assert top_level - OWN_PRESETS == set(OFFICIAL)


@pytest.mark.parametrize("preset", sorted(OFFICIAL))
def test_preset_matches_the_official_scripts(preset, monkeypatch):
    monkeypatch.chdir(ROOT)
    values = _resolved(preset)
    wrong = {k: (values[k], v) for k, v in OFFICIAL[preset].items() if values[k] != v}
    assert not wrong, f"{preset}: field -> (ours, official): {wrong}"


def test_every_table_1_row_and_figure_3_cell_has_a_preset():
    folders = {p for p in PRESETS if p.startswith(("mixup_imagenet/", "mixup_cifar_archs/"))}
    assert folders == set(PAPER_IMAGENET) | set(PAPER_CIFAR_ARCHS)
    assert len(PAPER_IMAGENET) == 14 and len(PAPER_CIFAR_ARCHS) == 12


@pytest.mark.parametrize("preset", sorted(PAPER_IMAGENET) + sorted(PAPER_CIFAR_ARCHS))
def test_mixup_paper_presets_match_the_paper(preset, monkeypatch):
    monkeypatch.chdir(ROOT)
    values = _resolved(preset)
    values["method"] = FLAGS.method
    expected = {**PAPER_IMAGENET, **PAPER_CIFAR_ARCHS}[preset]
    wrong = {k: (values[k], v) for k, v in expected.items() if values[k] != v}
    assert not wrong, f"{preset}: field -> (ours, paper): {wrong}"


def test_mixup_paper_suites_list_every_preset_with_the_papers_numbers():
    from mixmatch_tf.reproduce import SUITES
    runs = SUITES["imagenet_mixup"].make_runs([0])
    assert {dict(r.flags)["flagfile"] for r in runs} == {
        f"flags/presets/{p}.cfg" for p in PAPER_IMAGENET}
    by_preset = {dict(r.flags)["flagfile"].split("/")[-1]: r for r in runs}
    # Table 1, by hand: top-1 / top-5 error of a few cells
    assert dict(by_preset["mixup_resnet50_90ep.cfg"].paper) == {
        "test_error": 23.3, "top5_test_error": 6.6}
    assert dict(by_preset["erm_resnet50_90ep.cfg"].paper) == {"test_error": 23.5}
    assert dict(by_preset["mixup_resnext101_32x4d_200ep.cfg"].paper) == {
        "test_error": 20.1, "top5_test_error": 5.0}
    runs = SUITES["cifar_mixup_archs"].make_runs([0])
    assert {dict(r.flags)["flagfile"] for r in runs} == {
        f"flags/presets/{p}.cfg" for p in PAPER_CIFAR_ARCHS}
    by_preset = {dict(r.flags)["flagfile"].split("/")[-1]: r.paper for r in runs}
    # Figure 3a, by hand
    assert by_preset["erm_wrn28_10_cifar10.cfg"] == 3.8
    assert by_preset["mixup_densenet_bc_190_cifar100.cfg"] == 16.8
    assert by_preset["mixup_preact_resnet18_cifar100.cfg"] == 21.1


@pytest.mark.parametrize("preset", [p for p in PRESETS if p.startswith("mixup_ablation/")])
def test_mixup_ablation_presets_follow_train_py(preset, monkeypatch):
    # The ablation rows change weight decay (1e-4 or 5e-4, the table's two columns) and
    # the ablated component, never the optimiser or schedule of train.py.
    monkeypatch.chdir(ROOT)
    values = _resolved(preset)
    wd = 1e-4 if preset.endswith("--wd1e-4") else 5e-4
    expected = dict(_MIXUP_CIFAR10, weight_decay=wd)
    wrong = {k: (values[k], v) for k, v in expected.items() if values[k] != v}
    assert not wrong, f"{preset}: field -> (ours, official): {wrong}"


def test_a_shared_flag_shows_each_methods_own_help_and_default():
    text = FLAGS["learning_rate"].help
    assert re.search(r"mixmatch[^:;]*: Adam learning rate, constant[^;]*\[default 0\.002\]",
                     text), text
    assert re.search(r"erm, mixup: SGD learning rate[^;]*\[default 0\.1\]", text), text
    assert re.search(r"dividemix: SGD learning rate[^;]*\[default 0\.02\]", text), text
    # help declared as field metadata (settings.setting), per method
    fields = cli.method_fields()
    assert fields["batch_size"][1]["erm"] == ("global batch size", 128)
    assert fields["batch_size"][1]["mixmatch"][1] == 64


# ---------------------------------------------------------------- help of every method setting
def _compact(text):
    """``text`` without whitespace: absl wraps flag help at spaces and after hyphens."""
    return "".join(text.split())


@pytest.mark.parametrize("method", method_names())
def test_every_config_field_declares_its_help(method):
    """Each field of each registered method's Config is a ``setting(default, help)``: the
    help is the field's metadata, inherited or redeclared (a subclass that redeclares a
    field with a bare default drops its help)."""
    missing = [f.name for f in dataclasses.fields(get_method(method).Config)
               if not str(f.metadata.get("help", "")).strip()]
    assert not missing, f"{method}: fields without help metadata: {missing}"


def test_a_config_field_without_help_is_refused(monkeypatch):
    """The flags are not built from a Config with an undocumented field (no comment parsing)."""
    @dataclasses.dataclass(frozen=True)
    class Config(TrainConfig):
        bare: int = 3  # a comment is no help

    monkeypatch.setattr(cli, "method_names", lambda: ("bare",))
    monkeypatch.setattr(cli, "get_method", lambda name: type("Bare", (), {"Config": Config}))
    with pytest.raises(TypeError, match="'bare' of method 'bare' has no help"):
        cli.method_fields()


def test_helpfull_shows_each_methods_help_of_every_field():
    """``train.py --helpfull`` shows, under each method flag, every method's own help and
    default for it (absl rewraps the text, so whitespace is ignored)."""
    out = run_script(["scripts/train.py", "--helpfull"], timeout=120)
    assert "--method:" in out.stdout, out.stderr
    # flag name -> its help block (the line "  --name: ..." and the lines indented under it)
    blocks, name = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"  --(?:\[no\])?(\w+):(.*)", line)
        if m:
            name = m.group(1)
            blocks[name] = m.group(2)
        elif name and line.startswith("    "):
            blocks[name] += line
        else:
            name = None
    for method in method_names():
        for f in dataclasses.fields(get_method(method).Config):
            shown = _compact(f"{f.metadata.get('help', '')} [default {f.default!r}]")
            # "mixmatch, vat: <help> [default ...]" among the other methods' groups
            pattern = rf"(?:^|;)(?:\w+,)*{method}(?:,\w+)*:{re.escape(shown)}"
            assert re.search(pattern, _compact(blocks.get(f.name, ""))), (
                method, f.name, blocks.get(f.name))


# ------------------------------------------------- every numeric setting, its interval
def _numeric_fields():
    """(method, field, its type: int or float) of every number or tuple of numbers."""
    import typing
    from mixmatch_tf.flags.common import _base_type
    out = []
    for name in method_names():
        config = get_method(name).Config
        hints = typing.get_type_hints(config)
        for f in dataclasses.fields(config):
            typ = _base_type(hints[f.name])
            if typ is tuple:
                typ = float  # the tuple settings hold floats (fractions, epochs)
            if typ in (int, float):
                out.append((name, f, typ))
    return out


NUMERIC = _numeric_fields()


def test_every_numeric_setting_declares_its_interval_and_its_default_lies_in_it():
    assert len(NUMERIC) > 60
    for method, f, _ in NUMERIC:
        within = f.metadata.get("within")
        assert within is not None, f"{method}.{f.name}: declare setting(..., within=...)"
        values = f.default if isinstance(f.default, tuple) else (f.default,)
        assert all(v is None or v in within for v in values), (method, f.name, f.default)


def _outside(within, typ):
    """Values just outside each finite bound of ``within``."""
    low, high = (float(v) for v in str(within)[1:-1].split(","))
    out = []
    for bound, closed, sign in ((low, str(within)[0] == "[", -1),
                                (high, str(within)[-1] == "]", 1)):
        if bound in (float("inf"), float("-inf")):
            continue
        step = 1 if typ is int else max(1e-3 * abs(bound), 1e-9)
        out.append(typ(bound + sign * step) if closed else typ(bound))
    return out


@pytest.mark.parametrize("method,field,typ", [(m, f.name, t) for m, f, t in NUMERIC],
                         ids=[f"{m}-{f.name}" for m, f, _ in NUMERIC])
def test_a_value_outside_the_declared_interval_is_refused_naming_it(method, field, typ):
    from mixmatch_tf.methods import ConfigError
    config = get_method(method).Config
    within = next(f for f in dataclasses.fields(config) if f.name == field).metadata["within"]
    tuple_field = isinstance(next(f for f in dataclasses.fields(config)
                                  if f.name == field).default, tuple)
    for value in _outside(within, typ):
        with pytest.raises(ConfigError, match=re.escape(f"{field}: must be in {within}, got ")):
            config(**{field: (value,) if tuple_field else value})
