"""Command-line flags: invalid values are refused before any work, naming the flag."""
import os

import pytest
from absl import app

from conftest import ROOT, run_script
from flags import common as cli

cli.define_train_flags()
FLAGS = cli.FLAGS

CASES = [
    (["--method=mixmatchx"], "--method=mixmatchx: unknown method; valid: "),
    (["--dataset=imagenet"], "--dataset=imagenet: unknown dataset; valid: digits"),
    (["--model=resnet50"], "--model=resnet50: unknown model; valid: "),
    (["--mixup_alpha=0"], "--mixup_alpha=0.0: must be > 0"),
    (["--method=erm", "--mixup_alpha=2"], "--mixup_alpha=2.0: does not apply to method 'erm'"),
    (["--noise_type=sym", "--noise_rate=1.5"], "--noise_rate=1.5: must be in [0, 1]"),
    (["--noise_rate=0.5"], "--noise_rate=0.5: is 0.5 but --noise_type is not set"),
    (["--batch_size=-4"], "--batch_size=-4: must be > 0"),
    (["--dataset=npz:/no/such/file.npz"], "file '/no/such/file.npz' does not exist"),
    (["--lr_decay_at=0.5,x"], "--lr_decay_at"),
    (["--lr_decay_at=1.5"], "--lr_decay_at=['1.5']: must be fractions of training in (0, 1)"),
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
    assert "Invalid flag --mixup_alpha=-1.0: must be > 0" in out.stderr
    assert not (tmp_path / "run").exists()


def test_a_shared_flag_shows_each_methods_own_help_and_default():
    import re
    text = FLAGS["learning_rate"].help
    assert re.search(r"mixmatch[^:;]*: Adam, constant \[default 0\.002\]", text), text
    assert re.search(r"erm, mixup: SGD learning rate[^;]*\[default 0\.1\]", text), text
    assert "dividemix: SGD learning rate [default 0.02]" in text
    # help declared as field metadata (base.setting), per method
    fields = cli.method_fields()
    assert fields["batch_size"][1]["erm"] == ("global batch size", 128)
    assert fields["batch_size"][1]["mixmatch"][1] == 64
