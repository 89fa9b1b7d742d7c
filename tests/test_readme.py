"""The README's command blocks marked ``<!-- runnable -->`` run as written, in order, on
the bundled digits: relative paths go into a temporary folder and training is capped at
a few steps (the README's Python and folder examples run in test_your_data.py)."""
import os
import re
import shlex

import tensorflow as tf

from conftest import ROOT, run_script

PATH_FLAGS = ("model_dir", "export_dir", "saved_model_dir", "output_dir")
TRAIN_CAP = ["--train_steps=40", "--eval_every=40"]


def runnable_commands(text):
    """The ``python scripts/...`` commands of the marked blocks, in order, as argv lists."""
    commands = []
    for block in re.findall(r"<!-- runnable -->\n```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("python scripts/"):
                commands.append(shlex.split(line)[1:])
    return commands


def in_folder(args, folder):
    """``args`` with relative paths (path flags and bare arguments) moved into ``folder``."""
    out = []
    for arg in args[1:]:
        name, eq, value = arg.partition("=")
        if eq and name.lstrip("-") in PATH_FLAGS and not os.path.isabs(value):
            arg = f"{name}={os.path.join(folder, value)}"
        elif not arg.startswith("-"):
            arg = os.path.join(folder, arg)
        out.append(arg)
    return [args[0]] + out


def test_the_readmes_runnable_blocks_run_in_order(tmp_path, digits):
    commands = runnable_commands(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read())
    scripts = [c[0] for c in commands]
    assert {"scripts/train.py", "scripts/evaluate.py", "scripts/export.py",
            "scripts/serve_client.py"} <= set(scripts), scripts
    tf.io.write_file(str(tmp_path / "digit.png"), tf.io.encode_png(digits.test_images[0]))
    for command in commands:
        args = in_folder(command, str(tmp_path))
        if args[0] == "scripts/train.py":
            args += TRAIN_CAP
        out = run_script(args, timeout=600)
        assert out.returncode == 0, (command, out.stderr[-2000:])
        assert out.stdout.strip(), command
    assert (tmp_path / "runs" / "mixup" / "metrics.json").is_file()
    assert "digit.png: " in out.stdout  # the client's answer, the last command's
