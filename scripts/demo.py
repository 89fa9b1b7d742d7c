r"""The main job on the bundled UCI digits: trains, then prints a results table.

  python scripts/demo.py [--output_dir=runs/demo] [--seed=0]

* Semi-supervised, the headline: MixMatch with 50 labels (5 per class) and the
  other 1,247 training images unlabeled, against supervised-only training on the
  same 50 labels (small CNN, 1,500 steps each).
* Noisy labels (50% symmetric noise): ERM against mixup (alpha 8, the paper's
  corrupted-label setting), small CNN, step-decayed learning rate, 60 epochs.

Every run is a normal run folder under --output_dir (resumable, with TensorBoard
summaries and metrics.json). One to three minutes on 2 CPU cores, by CPU kind.
"""
import os
import tempfile
import time

from absl import flags

from mixmatch_tf import cli

FLAGS = flags.FLAGS

NOISY = {"noise_type": "sym", "noise_rate": 0.5}
SSL = "Semi-supervised: 50 labels (5 per class), small CNN, 1,500 steps"
NOISE = "Noisy labels: 50% symmetric noise, small CNN, 60 epochs"
RUNS = [
    # (section, label, method, run settings, method settings)
    (SSL, "MixMatch", "mixmatch", {}, {"num_labeled": 50}),
    (SSL, "supervised only", "supervised", {}, {"num_labeled": 50}),
    (NOISE, "ERM", "erm", NOISY, {}),
    (NOISE, "mixup (alpha 8)", "mixup", NOISY, {"mixup_alpha": 8.0}),
]


def main(argv):
    del argv
    from mixmatch_tf.data import load_digits
    from mixmatch_tf.training import RunConfig, Trainer, make_strategy
    strategy = make_strategy()
    data = load_digits()
    out_dir = FLAGS.output_dir or tempfile.mkdtemp(prefix="mixmatch_tf_demo_")
    print(f"mixmatch_tf demo: bundled UCI digits, {data.num_train} training / "
          f"{len(data.test_labels)} test images; runs in {out_dir}", flush=True)
    rows = []
    for section, label, method, run_settings, config in RUNS:
        model_dir = os.path.join(out_dir, f"{method}-seed{FLAGS.seed}")
        run = RunConfig(model_dir=model_dir, seed=FLAGS.seed, **run_settings)
        t0 = time.time()
        print(f"{label}:", flush=True)
        metrics = Trainer(method, data, run, config=config, strategy=strategy).fit()
        rows.append((section, label, metrics, time.time() - t0))
        print(f"  {label:<22} test error {metrics['test_error']:5.1f}%  "
              f"({metrics['steps']} steps, {time.time() - t0:.0f} s)", flush=True)
    print()
    current = None
    for section, label, m, secs in rows:
        if section != current:
            current = section
            print(section)
            print(f"  {'method':<22}{'last-epoch test error':>24}{'best':>8}{'time':>8}")
        print(f"  {label:<22}{m['test_error']:>23.1f}%{m['best_test_error']:>7.1f}%"
              f"{secs:>7.0f}s")


def define_flags():
    flags.DEFINE_string("output_dir", None, "Where the run folders go (default: a new temp "
                        "folder).")
    flags.DEFINE_integer("seed", 0, "Seed of every run.")


if __name__ == "__main__":
    cli.launch(main, define_flags, __doc__)
