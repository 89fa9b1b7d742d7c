"""MultiWorkerMirroredStrategy: two worker processes on localhost train like two replicas."""
import json
import os
import socket
import subprocess
import sys

import numpy as np

from conftest import ROOT, checkpoint_weights


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _two_workers(args, model_dir, mirrored_dir):
    """Runs ``args`` as a 2-replica mirrored run and as two workers on localhost at once."""
    mirrored = subprocess.Popen(
        [sys.executable] + args + ["--cpu_replicas=2", f"--model_dir={mirrored_dir}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                      "index": i}}))
        procs.append(subprocess.Popen(
            [sys.executable] + args + ["--strategy=multi_worker", f"--model_dir={model_dir}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in [mirrored] + procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]


def test_two_workers_end_with_the_weights_of_two_mirrored_replicas(tmp_path):
    args = ["scripts/train.py", "--method=mixup", "--dataset=digits", "--train_steps=6",
            "--eval_every=3", "--checkpoint_every=3", "--seed=5", "--precision=float32"]
    _two_workers(args, tmp_path / "multi", tmp_path / "mirrored")

    multi = json.load(open(tmp_path / "multi" / "metrics.json"))
    assert multi["num_replicas"] == 2 and multi["steps"] == 6
    # only the chief writes into model_dir
    assert sorted(os.listdir(tmp_path / "multi" / "ckpt"))[0].startswith("checkpoint")
    assert not (tmp_path / "multi" / "workers").exists()
    a = checkpoint_weights(tmp_path / "mirrored", "state_net")
    b = checkpoint_weights(tmp_path / "multi", "state_net")
    assert a.keys() == b.keys() and a
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)
    mirrored_metrics = json.load(open(tmp_path / "mirrored" / "metrics.json"))
    assert abs(mirrored_metrics["test_error"] - multi["test_error"]) < 0.5


def test_two_workers_stream_a_folder_and_train_the_step_of_two_mirrored_replicas(tmp_path):
    """ImageNet-layout JPEGs streamed from files: each worker reads and decodes its own
    replica's slice of every global batch (and mixes within it), and the two end where two
    mirrored replicas of one worker end."""
    from test_streaming import make_imagenet_folder
    folder = make_imagenet_folder(tmp_path / "imagenet", classes=2, train=4, val=2)
    args = ["scripts/train.py", "--method=mixup", f"--dataset=folder:{folder}", "--stream=true",
            "--image_size=16", "--model=small_cnn", "--batch_size=4", "--train_steps=3",
            "--eval_every=3", "--eval_batch_size=4", "--steps_per_call=3", "--seed=5",
            "--precision=float32"]
    _two_workers(args, tmp_path / "multi", tmp_path / "mirrored")
    multi = json.load(open(tmp_path / "multi" / "metrics.json"))
    mirrored = json.load(open(tmp_path / "mirrored" / "metrics.json"))
    assert multi["num_replicas"] == mirrored["num_replicas"] == 2 and multi["steps"] == 3
    assert multi["unreadable_images"] == 0
    a = checkpoint_weights(tmp_path / "mirrored", "state_net")
    b = checkpoint_weights(tmp_path / "multi", "state_net")
    assert a.keys() == b.keys() and a
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)
    assert multi["evals"][-1]["test_error"] == mirrored["evals"][-1]["test_error"]
