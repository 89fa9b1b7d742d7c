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


def test_two_workers_end_with_the_weights_of_two_mirrored_replicas(tmp_path):
    args = ["scripts/train.py", "--method=mixup", "--dataset=digits", "--train_steps=6",
            "--eval_every=3", "--checkpoint_every=3", "--seed=5"]
    # The mirrored run and the two workers start together (two cores, three processes).
    mirrored_log = open(tmp_path / "mirrored.log", "w")
    mirrored = subprocess.Popen(
        [sys.executable] + args + ["--cpu_replicas=2", f"--model_dir={tmp_path / 'mirrored'}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=mirrored_log)

    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                      "index": i}}))
        procs.append(subprocess.Popen(
            [sys.executable] + args + ["--strategy=multi_worker",
                                       f"--model_dir={tmp_path / 'multi'}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    mirrored.wait(timeout=600)
    mirrored_log.close()
    assert mirrored.returncode == 0, open(tmp_path / "mirrored.log").read()[-2000:]

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
