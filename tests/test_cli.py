"""The programs: --help lists their own flags by group, start-up is quiet, the console
commands are declared, and errors are one line."""
import importlib.metadata
import os
import re

import pytest

from conftest import run_script
from mixmatch_tf import cli

PROGRAMS = ("train", "evaluate", "export", "reproduce", "serve_client", "benchmark",
            "label_issues")


def test_every_program_is_a_console_command_and_a_script():
    entry_points = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")
                    if ep.value.startswith("mixmatch_tf.")}
    assert sorted(entry_points) == sorted(f"mixmatch-{p.replace('_', '-')}" for p in PROGRAMS)
    for program in PROGRAMS:
        ep = entry_points[f"mixmatch-{program.replace('_', '-')}"]
        assert ep.value == f"mixmatch_tf.cli.{program}:run" and callable(ep.load())
        from conftest import ROOT
        script = open(os.path.join(ROOT, "scripts", f"{program}.py")).read()
        assert f"from mixmatch_tf.cli.{program} import run" in script


def test_the_flag_definitions_install_under_the_package_name():
    """flags/ of the repository is mixmatch_tf.flags: the distribution claims no
    top-level name of its own but mixmatch_tf."""
    import mixmatch_tf.flags.common as common
    from conftest import ROOT
    assert os.path.samefile(common.__file__, os.path.join(ROOT, "flags", "common.py"))
    top = importlib.metadata.distribution("mixmatch_tf").read_text("top_level.txt")
    assert top.split() == ["mixmatch_tf"], top


@pytest.mark.parametrize("argv,expected", [
    ([], False), (["-v", "0"], True), (["-v", "-1"], False), (["--verbosity=1"], True),
    (["--v=2"], True), (["--verbosity", "0"], True), (["--verbosity=x"], False),
    (["-v"], False), (["--model_dir=-v"], False),
])
def test_verbosity_asked_for_on_the_command_line(argv, expected):
    assert cli.verbose(["prog"] + argv) is expected


def test_stderr_is_held_while_loading_and_shown_when_loading_fails(capfd):
    with cli._stderr_held():
        os.write(2, b"start-up chatter\n")
    assert capfd.readouterr().err == ""
    with pytest.raises(ImportError):
        with cli._stderr_held():
            os.write(2, b"why it failed\n")
            raise ImportError("no such library")
    assert capfd.readouterr().err == "why it failed\n"
    os.write(2, b"after\n")  # the descriptor is back
    assert capfd.readouterr().err == "after\n"


def test_train_help_lists_its_own_flags_by_group_one_line_each():
    out = run_script(["scripts/train.py", "--method=dividemix", "--help"], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    groups = re.findall(r"^(\S[^\n]*):$", text, flags=re.M)
    assert groups[:4] == ["Data", "Run", "Distribution", "Export"], groups
    assert groups[4].startswith("Settings of --method=dividemix")
    lines = {m.group(1): m.group(0) for m in re.finditer(r"^  --(?:\[no\])?(\w+)\S*  .*$",
                                                          text, flags=re.M)}
    for name in ("dataset", "method", "model_dir", "precision", "export_dir", "lambda_u",
                 "p_threshold", "warmup_epochs", "model"):
        assert name in lines, name
    assert "mixmatch, mixup" in lines["method"] and "folder:PATH" in lines["dataset"]
    assert "preact_resnet18" in lines["model"] and "wrn28_2" in lines["model"]
    assert lines["lambda_u"].startswith("  --lambda_u=25.0  ")  # DivideMix's default
    assert lines["precision"].startswith("  --precision=<auto|float32|mixed_bfloat16|")
    assert "mixup_per_example" not in lines  # another method's setting
    assert "xla_" not in text and "--helpfull" in text  # TensorFlow's flags only there
    assert out.stderr == ""
