"""mixmatch-benchmark's ImageNet entry at a tiny size: the generated JPEG folder, the
streamed Trainer, the two rates and the step's FLOPs at the data's shape and classes.

It runs in a fresh process (``python -c``: the benchmark's absl flags would collide with
the train flags other tests define), with the entry's ResNet-50 at 224 swapped for the
small CNN at 32 so that the test takes seconds.
"""
import json
import os
import textwrap

import numpy as np
import tensorflow as tf

from conftest import run_script
from mixmatch_tf.models import build_model, forward_flops

BATCH = 8
CODE = textwrap.dedent(f"""
    import json, sys
    from mixmatch_tf.cli import benchmark
    benchmark.define_flags()
    benchmark.FLAGS(["benchmark", "--steps=2", "--warmup=1", "--pipeline_steps=3"])
    method, _, config, _ = benchmark.SETUPS["mixup_imagenet"]
    benchmark.SETUPS["mixup_imagenet"] = (method, "small_cnn", dict(config, batch_size={BATCH}),
                                          {BATCH})
    data = benchmark.jpeg_folder_data(sys.argv[1], image_size=32, classes=3, per_class=4,
                                      sizes=(40, 60))
    out = benchmark.benchmark("mixup_imagenet", "float32", data, ceiling=100.0, device="GPU")
    print("RESULT", json.dumps(dict(out, data=type(data).__name__,
                                    num_classes=data.num_classes)))
""")


def test_the_imagenet_entry_streams_generated_jpegs_and_reports_step_and_pipeline(tmp_path):
    out = run_script(["-c", CODE, str(tmp_path)])
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.split("RESULT ", 1)[1])
    # The folder: ImageNet's layout, JPEGs of the asked sizes, val/ linking train/.
    train = sorted(os.listdir(tmp_path / "train"))
    assert train == sorted(os.listdir(tmp_path / "val")) == [f"n{c:08d}" for c in range(3)]
    files = [tmp_path / "train" / c / f"{c}_{i}.JPEG" for c in train for i in range(4)]
    for f in files:
        contents = tf.io.read_file(str(f))
        assert bool(tf.io.is_jpeg(contents))
        h, w, channels = tf.io.extract_jpeg_shape(contents).numpy()
        assert 40 <= h <= 60 and 40 <= w <= 60 and channels == 3
    assert os.path.samefile(tmp_path / "val" / train[0] / f"{train[0]}_0.JPEG", files[0])
    # Streamed, as train.py --dataset=folder:DIR streams it; one head output per folder.
    assert result["data"] == "StreamedData" and result["num_classes"] == 3
    assert result["method"] == "mixup_imagenet" and result["model"] == "small_cnn"
    for key in ("train_images_per_s", "step_seconds", "pipeline_images_per_s", "gflops_per_s"):
        assert result[key] > 0, key
    assert "ratio" not in result  # no PyTorch reference off the CPU
    np.testing.assert_allclose(result["train_images_per_s"] * result["step_seconds"], BATCH)
    np.testing.assert_allclose(result["jpeg_kb"],
                               np.mean([os.path.getsize(f) for f in files]) / 1024)
    # FLOPs of a mixup step (one trained pass: x3) of the network at 32 x 32 x 3 and
    # 3 classes -- the streamed data's, not CIFAR's 10.
    flops = 3 * BATCH * forward_flops(build_model("small_cnn", (32, 32, 3), 3))
    np.testing.assert_allclose(result["gflops_per_s"] * result["step_seconds"] * 1e9, flops,
                               rtol=1e-6)
    np.testing.assert_allclose(result["matmul_fraction"], result["gflops_per_s"] / 100.0)
