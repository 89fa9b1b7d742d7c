"""The documentation points inside the repository at files that exist."""
import os
import re
import subprocess

import pytest

from conftest import ROOT

# Paths of a development machine, or of files beside the checkout.
OUTSIDE = re.compile(r"(?<![\w.~])/(work|root|home|Users)/|\.\./shared\b")
# Inline code that names a file of the repository.
REPO_PATH = re.compile(r"`((?:mixmatch_tf|scripts|tests|flags|docs|\.ci)/[^`\s<>*{}]*)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked(*suffixes):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [f for f in files if f.endswith(suffixes)]


def docs():
    return ["README.md"] + [f for f in tracked(".md") if f.startswith("docs/")]


def test_no_file_refers_to_a_path_outside_the_repository():
    bad = []
    for name in tracked(".py", ".md", ".cfg", ".sh", ".txt", ".toml", ".ini"):
        with open(os.path.join(ROOT, name), encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if OUTSIDE.search(line) and "OUTSIDE = re.compile" not in line:
                    bad.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", docs())
def test_the_files_the_documentation_names_exist(name):
    text = open(os.path.join(ROOT, name), encoding="utf-8").read()
    here = os.path.dirname(os.path.join(ROOT, name))
    missing = []
    for path in REPO_PATH.findall(text):
        path = re.split(r"[:(]", path)[0].rstrip(".,")
        if not os.path.exists(os.path.join(ROOT, path)):
            missing.append(path)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:|#", target):
            continue  # a web address or an anchor
        if not os.path.exists(os.path.join(here, target.split("#")[0])):
            missing.append(target)
    assert not missing, f"{name} names files that do not exist: {missing}"
