"""Named lists of runs that reproduce a table, with the paper's numbers where it has them.

A suite is a grid of runs: table rows (methods or variants) x table columns
(settings) x seeds. Every run is an ordinary ``mixmatch-train`` (``scripts/train.py``) command whose
flags are listed here, so each cell can be re-run or inspected by hand.
"""
import dataclasses
import re
from typing import Callable, Optional, Sequence, Tuple, Union


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of a suite.

    Attributes:
      row, column: where its result goes in the suite's table.
      flags: ``mixmatch-train`` flags as (name, value) pairs (a value of None
        means a bare boolean flag).
      seed: the run seed.
      paper: the paper's number for this cell, if it has one; or, where the
        suite's tables show several metrics, (metric, number) pairs.
    """
    row: str
    column: str
    flags: Tuple[Tuple[str, Optional[str]], ...]
    seed: int
    paper: Optional[Union[float, Tuple[Tuple[str, float], ...]]] = None

    def paper_for(self, metric):
        """The paper's number for ``metric`` (a metrics.json key), or None."""
        if isinstance(self.paper, tuple):
            return dict(self.paper).get(metric)
        return self.paper

    @property
    def run_id(self):
        return f"{slug(self.row)}--{slug(self.column)}--seed{self.seed}"

    def argv(self, model_dir, data_dir=None):
        args = [f"--{k}" if v is None else f"--{k}={v}" for k, v in self.flags]
        args += [f"--seed={self.seed}", f"--model_dir={model_dir}"]
        if data_dir:
            args.append(f"--data_dir={data_dir}")
        return args


@dataclasses.dataclass(frozen=True)
class Suite:
    """A reproduction: its runs, the metrics its tables show, its figures.

    Attributes:
      name: as given to ``--suite``.
      title: the heading of its report.
      description: a paragraph for the report (what is compared, settings).
      make_runs: seeds -> the list of RunSpecs.
      metrics: (metrics.json key, label) pairs; one table per metric.
      figures: names of figure makers in ``report.FIGURES``.
      experiment: for suites that are not grids of training runs, a function
        ``(output_dir, seeds) -> markdown`` that runs the experiment itself.
    """
    name: str
    title: str
    description: str
    make_runs: Callable[[Sequence[int]], list] = lambda seeds: []
    metrics: Tuple[Tuple[str, str], ...] = (("test_error", "last test error (%)"),)
    figures: Tuple[str, ...] = ()
    experiment: Optional[Callable] = None


def slug(text):
    return re.sub(r"[^a-zA-Z0-9.]+", "-", text).strip("-").lower()


def grid(rows, columns, seeds, base=(), paper=None):
    """RunSpecs for rows x columns x seeds; rows/columns map labels to flag pairs."""
    paper = paper or {}
    return [RunSpec(row=r, column=c, flags=tuple(base) + tuple(rf) + tuple(cf), seed=s,
                    paper=paper.get((r, c)))
            for r, rf in rows for c, cf in columns for s in seeds]


# ----------------------------------------------------------------------------- digits
SSL_METHODS = [("MixMatch", "mixmatch"), ("Supervised", "supervised"), ("Pi-Model", "pi_model"),
               ("Pseudo-Label", "pseudo_label"), ("Mean Teacher", "mean_teacher"),
               ("VAT", "vat"), ("mixup (SSL)", "mixup_ssl")]


def digits_ssl_runs(seeds):
    rows = [(label, (("method", m),)) for label, m in SSL_METHODS]
    columns = [(f"{n} labels", (("num_labeled", str(n)),)) for n in (20, 50, 100)]
    return grid(rows, columns, seeds, base=(("dataset", "digits"),))


# DivideMix's CIFAR-10 defaults, which the digits and Fashion tables below were measured
# with: one GMM, lambda_u 25, alpha 4, an epoch of each network its labeled side (the
# official formula) with at least 20 steps, the learning rate / 10 at half of the epochs.
OFFICIAL_EPOCH = (("min_steps_per_epoch", "20"),)
OFFICIAL_SCHEDULE = OFFICIAL_EPOCH + (("lr_decay_at", "0.5"),)
DIVIDEMIX_FIXED = (("lambda_u", "25"), ("mixup_alpha", "4"),
                   ("gmm_per_class", "false")) + OFFICIAL_SCHEDULE
NOISE_SETTINGS = [("sym 20%", "sym", "0.2"), ("sym 50%", "sym", "0.5"), ("sym 80%", "sym", "0.8"),
                  ("asym 40%", "asym", "0.4")]


def digits_noisy_runs(seeds):
    rows = [("ERM", (("method", "erm"),)),
            ("mixup (alpha 8)", (("method", "mixup"), ("mixup_alpha", "8"))),
            # Co-teaching's official main.py does not augment; here it gets the crop the
            # other rows get, so that the rows differ by method only.
            ("Co-teaching (+ crop)", (("method", "coteaching"), ("augment", "true"))),
            # The settings this table was measured with (a bare command now chooses
            # these three from the data: the dividemix_settings suite).
            ("DivideMix", (("method", "dividemix"),) + DIVIDEMIX_FIXED)]
    columns = [(label, (("noise_type", t), ("noise_rate", r))) for label, t, r in NOISE_SETTINGS]
    # DivideMix with the official confidence penalty in the warm-up under asymmetric noise
    # (the digits' defaults leave it off: dividemix.DIGITS).
    return [dataclasses.replace(run, flags=run.flags + (("confidence_penalty", "true"),))
            if run.row == "DivideMix" and run.column == "asym 40%" else run
            for run in grid(rows, columns, seeds, base=(("dataset", "digits"),))]


# ----------------------------------------------------------------------------- Fashion-MNIST
# The second real image data set, built offline from Debian's dataset-fashion-mnist by
# scripts/make_fashion_mnist.py (paths relative to the repository, where the runner runs).
FASHION = "npz:data/fashion_mnist.npz"
FASHION_5K = "npz:data/fashion_mnist_5k.npz"


def fashion_ssl_runs(seeds):
    rows = [(label, (("method", m),)) for label, m in SSL_METHODS]
    columns = [("100 labels", (("num_labeled", "100"),))]
    return grid(rows, columns, seeds, base=(("dataset", FASHION), ("model", "small_cnn"),
                                            ("train_steps", "2000"), ("eval_every", "250")))


def fashion_noisy_runs(seeds):
    epochs = (("epochs", "60"), ("batch_size", "64"))
    rows = [("ERM", (("method", "erm"),) + epochs),
            ("mixup (alpha 8)", (("method", "mixup"), ("mixup_alpha", "8")) + epochs),
            ("Co-teaching (+ crop)", (("method", "coteaching"), ("augment", "true")) + epochs),
            ("DivideMix", (("method", "dividemix"), ("epochs", "60"), ("warmup_epochs", "20"))
             + DIVIDEMIX_FIXED),
            # What DivideMix needs on this data (README, Results): one GMM per noisy-label
            # class, alpha 0.5 (the official WebVision value), lambda_u 0 (the official
            # CIFAR-10 sym-20% and Clothing1M value) and as many steps per network as the
            # other rows get (an epoch trains each network on its labeled half only).
            ("DivideMix (per-class GMM)",
             (("method", "dividemix"), ("gmm_per_class", "true"), ("mixup_alpha", "0.5"),
              ("lambda_u", "0"), ("epochs", "120"), ("warmup_epochs", "10"),
              ("lr_decay_at", "0.75")) + OFFICIAL_EPOCH)]
    columns = [(label, (("noise_type", t), ("noise_rate", r))) for label, t, r in NOISE_SETTINGS
               if label in ("sym 50%", "sym 80%")]
    return grid(rows, columns, seeds, base=(("dataset", FASHION_5K), ("model", "small_cnn")))


# DivideMix's official settings per cell (CIFAR-10 column of Train_CIFAR.py's table):
# lambda_u 0 at 20% symmetric and 40% asymmetric noise, 25 at 50% and 80%; alpha 4; one GMM.
OFFICIAL_LAMBDA_U = {"sym 20%": "0", "sym 50%": "25", "sym 80%": "25", "asym 40%": "0"}
# Fashion-MNIST's look-alike classes, each pair swapped both ways: T-shirt/top <-> Shirt,
# Pullover <-> Coat, Sneaker <-> Ankle boot.
FASHION_PAIRS = "0:6,6:0,2:4,4:2,7:9,9:7"


def dividemix_settings_runs(seeds):
    """DivideMix with the settings it chooses from the data against its official settings,
    ERM and Co-teaching: the digits at four noise settings, Fashion-MNIST 5k at two."""
    columns = [("digits " + label, "digits", t, r, label, ())
               for label, t, r in NOISE_SETTINGS]
    fashion = (("model", "small_cnn"),)
    columns += [("fashion sym 50%", FASHION_5K, "sym", "0.5", "sym 50%", fashion),
                ("fashion pairs 40%", FASHION_5K, "asym", "0.4", "asym 40%",
                 fashion + (("noise_mapping", FASHION_PAIRS),))]
    runs = []
    for column, dataset, noise_type, rate, official, extra in columns:
        base = (("dataset", dataset), ("noise_type", noise_type), ("noise_rate", rate)) + extra
        # Fashion's ERM and Co-teaching rows as in fashion_noisy (60 epochs of 64).
        epochs = (("epochs", "60"), ("batch_size", "64")) if dataset == FASHION_5K else ()
        official_schedule = ((("epochs", "60"), ("warmup_epochs", "20"))
                             if dataset == FASHION_5K else ())
        rows = [("ERM", (("method", "erm"),) + epochs),
                ("Co-teaching (+ crop)", (("method", "coteaching"), ("augment", "true")) + epochs),
                ("DivideMix (official settings)",
                 (("method", "dividemix"), ("lambda_u", OFFICIAL_LAMBDA_U[official]),
                  ("mixup_alpha", "4"), ("gmm_per_class", "false"),
                  ("confidence_penalty", str(noise_type == "asym").lower()))
                 + OFFICIAL_SCHEDULE + official_schedule),
                ("DivideMix (settings from the data)", (("method", "dividemix"),))]
        runs += [RunSpec(row=row, column=column, flags=base + flags, seed=s)
                 for row, flags in rows for s in seeds]
    return runs


# The mixup paper's ablation table (CIFAR-10, PreAct ResNet-18): row -> (flags,
# paper's median test error of the last 10 epochs at weight decay 1e-4 and 5e-4).
ABLATION = [
    ("ERM", (("method", "erm"),), (5.53, 5.18)),
    ("mixup AC + RP", (("method", "mixup"),), (4.24, 4.68)),
    ("mixup AC + KNN", (("method", "mixup"), ("pairing", "knn")), (4.98, 5.26)),
    # Layer k = the output of stage k of the network (mixup.py): on PreAct ResNet-18
    # 1 = the stem (first conv), 2..5 = residual stages layer1..layer4.
    ("mix labels and latent representations, layer 1", (("method", "mixup"), ("mix_layer", "1")),
     (4.44, 4.51)),
    ("mix labels and latent representations, layer 2", (("method", "mixup"), ("mix_layer", "2")),
     (4.56, 4.61)),
    ("mix labels and latent representations, layer 3", (("method", "mixup"), ("mix_layer", "3")),
     (5.39, 5.55)),
    ("mix labels and latent representations, layer 4", (("method", "mixup"), ("mix_layer", "4")),
     (5.95, 5.43)),
    ("mix labels and latent representations, layer 5", (("method", "mixup"), ("mix_layer", "5")),
     (5.39, 5.15)),
    ("mix inputs only SC + KNN", (("method", "mixup"), ("mix_targets", "false"),
                                  ("same_class", "true"), ("pairing", "knn")), (5.45, 5.52)),
    ("mix inputs only AC + KNN", (("method", "mixup"), ("mix_targets", "false"),
                                  ("pairing", "knn")), (5.43, 5.48)),
    ("mix inputs only SC + RP", (("method", "mixup"), ("mix_targets", "false"),
                                 ("same_class", "true")), (5.23, 5.55)),
    ("mix inputs only AC + RP", (("method", "mixup"), ("mix_targets", "false")), (5.17, 5.72)),
    ("label smoothing eps 0.05", (("method", "erm"), ("label_smoothing", "0.05")), (5.25, 5.02)),
    ("label smoothing eps 0.1", (("method", "erm"), ("label_smoothing", "0.1")), (5.33, 5.17)),
    ("label smoothing eps 0.2", (("method", "erm"), ("label_smoothing", "0.2")), (5.34, 5.06)),
    ("mix inputs + label smoothing eps 0.05", (("method", "mixup"), ("mix_targets", "false"),
                                               ("label_smoothing", "0.05")), (5.02, 5.40)),
    ("mix inputs + label smoothing eps 0.1", (("method", "mixup"), ("mix_targets", "false"),
                                              ("label_smoothing", "0.1")), (5.08, 5.09)),
    ("mix inputs + label smoothing eps 0.2", (("method", "mixup"), ("mix_targets", "false"),
                                              ("label_smoothing", "0.2")), (4.98, 5.06)),
    ("mix inputs + label smoothing eps 0.4", (("method", "mixup"), ("mix_targets", "false"),
                                              ("label_smoothing", "0.4")), (5.25, 5.39)),
    ("Gaussian input noise sigma 0.05", (("method", "erm"), ("input_noise", "0.05")),
     (5.53, 5.04)),
    ("Gaussian input noise sigma 0.1", (("method", "erm"), ("input_noise", "0.1")), (6.41, 5.86)),
    ("Gaussian input noise sigma 0.2", (("method", "erm"), ("input_noise", "0.2")), (7.16, 7.24)),
    ("mixup of 3 examples, Dirichlet", (("method", "mixup"), ("num_mixed", "3")), (None, None)),
]
WEIGHT_DECAYS = ("1e-4", "5e-4")


# The digits' small CNN has two stages before its head (block1: two convs and a
# max-pool; block2: two convs and the global pool), so only layers 1 and 2 exist there.
SMALL_CNN_MIX_LAYERS = 2


def mixup_ablation_digits_runs(seeds):
    rows = [(label, flags) for label, flags, _ in ABLATION
            if int(dict(flags).get("mix_layer", 0)) <= SMALL_CNN_MIX_LAYERS]
    columns = [(f"wd {wd}", (("weight_decay", wd),)) for wd in WEIGHT_DECAYS]
    return grid(rows, columns, seeds, base=(("dataset", "digits"),))


def ablation_preset(label, wd):
    return f"{PRESETS}/mixup_ablation/{slug(label)}--wd{wd}.cfg"


def mixup_ablation_cifar10_runs(seeds):
    return [RunSpec(label, f"wd {wd}", (("flagfile", ablation_preset(label, wd)),), s,
                    paper=paper[i])
            for label, _, paper in ABLATION for i, wd in enumerate(WEIGHT_DECAYS) for s in seeds]


# The corrupted-label table (mixup paper, Table 2): per noise rate, the paper's alpha and
# dropout of each row; paper numbers are CIFAR-10 (PreAct ResNet-18) best / last test error.
CORRUPTED = {
    "ERM": {"20%": (), "50%": (), "80%": ()},
    "ERM + dropout": {"20%": (("dropout", "0.7"),), "50%": (("dropout", "0.8"),),
                      "80%": (("dropout", "0.8"),)},
    "mixup": {"20%": (("mixup_alpha", "8"),), "50%": (("mixup_alpha", "32"),),
              "80%": (("mixup_alpha", "32"),)},
    "mixup + dropout": {"20%": (("mixup_alpha", "4"), ("dropout", "0.1")),
                        "50%": (("mixup_alpha", "8"), ("dropout", "0.3")),
                        "80%": (("mixup_alpha", "8"), ("dropout", "0.3"))},
}
CORRUPTED_PAPER = {  # (row, column) -> (best, last, train error real, train error corrupted)
    ("ERM", "20%"): (12.7, 16.6, 0.05, 0.28), ("ERM + dropout", "20%"): (8.8, 10.4, 5.26, 83.55),
    ("mixup", "20%"): (5.9, 6.4, 2.27, 86.32), ("mixup + dropout", "20%"): (6.2, 6.2, 1.92, 85.02),
    ("ERM", "50%"): (18.8, 44.6, 0.26, 0.64), ("ERM + dropout", "50%"): (14.1, 15.5, 12.71, 86.98),
    ("mixup", "50%"): (11.3, 12.7, 5.84, 85.71),
    ("mixup + dropout", "50%"): (10.9, 10.9, 7.56, 87.90),
    ("ERM", "80%"): (36.5, 73.9, 0.62, 0.83), ("ERM + dropout", "80%"): (30.9, 35.1, 29.84, 86.37),
    ("mixup", "80%"): (25.3, 30.9, 18.92, 85.44),
    ("mixup + dropout", "80%"): (24.0, 24.8, 19.70, 87.67),
}
CORRUPTED_METRICS = (("best_test_error", "best test error (%)"),
                     ("test_error", "last test error (%)"),
                     ("train_error_real", "training error on the real labels (%)"),
                     ("train_error_corrupted", "training error on the corrupted labels (%)"))


def corrupted_runs(base, paper_index=None):
    def make(seeds):
        runs = []
        for row, cells in CORRUPTED.items():
            method = "mixup" if row.startswith("mixup") else "erm"
            for column, flags in cells.items():
                rate = str(int(column[:-1]) / 100)
                paper = (CORRUPTED_PAPER[(row, column)][paper_index]
                         if paper_index is not None else None)
                runs += [RunSpec(row, column, tuple(base) + (("method", method),
                                                             ("noise_type", "sym"),
                                                             ("noise_rate", rate)) + flags, s,
                                 paper=paper) for s in seeds]
        return runs
    return make


def tabular_runs(seeds):
    rows = [("ERM", (("method", "erm"),)), ("mixup (alpha 1)", (("method", "mixup"),))]
    columns = [(name, (("dataset", name), ("model", "mlp"), ("batch_size", "32"),
                       ("epochs", "100"))) for name in ("breast_cancer", "wine")]
    return grid(rows, columns, seeds)


# ------------------------------------------------------------------------ full scale
PRESETS = "flags/presets"

MIXMATCH_C10 = {250: 11.08, 500: 9.65, 1000: 7.75, 2000: 7.03, 4000: 6.24}
MIXMATCH_SVHN = {250: 3.78, 500: 3.64, 1000: 3.27, 2000: 3.04, 4000: 2.89}
BASELINES_C10_4000 = {"Pi-Model": 17.41, "Pseudo-Label": 16.21, "mixup (SSL)": 13.15,
                      "VAT": 11.05, "Mean Teacher": 10.36}


def cifar10_ssl_runs(seeds):
    runs = [RunSpec("MixMatch", f"{n} labels", (("flagfile", f"{PRESETS}/mixmatch_cifar10_{n}.cfg"),),
                    s, paper=err) for n, err in MIXMATCH_C10.items() for s in seeds]
    for label, method in SSL_METHODS[1:]:
        runs += [RunSpec(label, "4000 labels",
                         (("flagfile", f"{PRESETS}/{method}_cifar10_4000.cfg"),), s,
                         paper=BASELINES_C10_4000.get(label)) for s in seeds]
    return runs


def svhn_ssl_runs(seeds):
    return [RunSpec("MixMatch", f"{n} labels", (("flagfile", f"{PRESETS}/mixmatch_svhn_{n}.cfg"),),
                    s, paper=err) for n, err in MIXMATCH_SVHN.items() for s in seeds]


# DivideMix paper, CIFAR-10/100 accuracy best / last-10 -> error
DIVIDEMIX_C10 = {"sym20": (3.9, 4.3), "sym50": (5.4, 5.6), "sym80": (6.8, 7.1),
                 "sym90": (24.0, 24.6), "asym40": (6.6, 7.9)}
DIVIDEMIX_C100 = {"sym80": (39.8, 40.4), "sym90": (68.5, 69.0)}
# The DivideMix paper reports the MEAN test accuracy of the last 10 epochs.
CIFAR_NOISY_METRICS = (("mean_last_10_test_error", "test error (%), mean of the last 10 epochs"),
                       ("best_test_error", "best test error (%)"))


def cifar_noisy_runs(dataset, cells):
    def make(seeds):
        runs = []
        for cell in ("sym20", "sym50", "sym80", "sym90") + (("asym40",) if dataset == "cifar10" else ()):
            paper = cells.get(cell, (None, None))[1]
            runs += [RunSpec("DivideMix", cell, (("flagfile",
                                                  f"{PRESETS}/dividemix_{dataset}_{cell}.cfg"),),
                             s, paper=paper) for s in seeds]
        return runs
    return make


MIXUP_C10 = {("ERM", "wd 1e-4"): 5.53, ("mixup", "wd 1e-4"): 4.24}


def cifar10_mixup_runs(seeds):
    return [RunSpec(label, "wd 1e-4", (("flagfile", f"{PRESETS}/{name}_cifar10.cfg"),), s,
                    paper=MIXUP_C10[(label, "wd 1e-4")])
            for label, name in (("ERM", "erm"), ("mixup", "mixup")) for s in seeds]


# The mixup paper's Table 1 (ImageNet-2012): row -> (network, method, {epochs: (top-1,
# top-5)}), the paper's validation errors (None: not given). Presets:
# flags/presets/mixup_imagenet/<method>_<network>_<epochs>ep.cfg. The ERM rows at 90 epochs of
# the ResNets are the paper's quotes of Goyal et al. (no top-5), that of ResNeXt-101 64x4d its
# quote of Xie et al. (100 epochs of their own recipe); the preset runs the paper's recipe.
IMAGENET_TABLE1 = [
    ("ResNet-50, ERM", "resnet50", "erm", {90: (23.5, None), 200: (23.6, 7.0)}),
    ("ResNet-50, mixup alpha 0.2", "resnet50", "mixup", {90: (23.3, 6.6), 200: (22.1, 6.1)}),
    ("ResNet-101, ERM", "resnet101", "erm", {90: (22.1, None), 200: (22.0, 6.1)}),
    ("ResNet-101, mixup alpha 0.2", "resnet101", "mixup", {90: (21.5, 5.6), 200: (20.8, 5.4)}),
    ("ResNeXt-101 32x4d, ERM", "resnext101_32x4d", "erm", {90: (21.2, 5.6), 200: (21.3, 5.9)}),
    ("ResNeXt-101 32x4d, mixup alpha 0.4", "resnext101_32x4d", "mixup",
     {90: (20.7, 5.3), 200: (20.1, 5.0)}),
    ("ResNeXt-101 64x4d, ERM", "resnext101_64x4d", "erm", {90: (20.4, 5.3)}),
    ("ResNeXt-101 64x4d, mixup alpha 0.4", "resnext101_64x4d", "mixup", {90: (19.8, 4.9)}),
]


def imagenet_mixup_runs(seeds):
    runs = []
    for row, model, method, cells in IMAGENET_TABLE1:
        for epochs, (top1, top5) in cells.items():
            paper = (("test_error", top1),) + ((("top5_test_error", top5),) if top5 else ())
            runs += [RunSpec(row, f"{epochs} epochs", (
                ("flagfile", f"{PRESETS}/mixup_imagenet/{method}_{model}_{epochs}ep.cfg"),), s,
                paper=paper) for s in seeds]
    return runs


# Figure 3a (CIFAR test error %, ERM / mixup alpha 1), presets
# flags/presets/mixup_cifar_archs/<method>_<network>_<data>.cfg.
CIFAR_ARCHS = {("cifar10", "preact_resnet18"): (5.6, 4.2), ("cifar10", "wrn28_10"): (3.8, 2.7),
               ("cifar10", "densenet_bc_190"): (3.7, 2.7),
               ("cifar100", "preact_resnet18"): (25.6, 21.1),
               ("cifar100", "wrn28_10"): (19.4, 17.5),
               ("cifar100", "densenet_bc_190"): (19.0, 16.8)}
ARCH_NAMES = {"preact_resnet18": "PreAct ResNet-18", "wrn28_10": "WideResNet-28-10",
              "densenet_bc_190": "DenseNet-BC-190"}


def cifar_mixup_archs_runs(seeds):
    runs = []
    for (dataset, model), papers in CIFAR_ARCHS.items():
        for method, paper in zip(("erm", "mixup"), papers):
            runs += [RunSpec(f"{ARCH_NAMES[model]}, {method}", dataset, (
                ("flagfile", f"{PRESETS}/mixup_cifar_archs/{method}_{model}_{dataset}.cfg"),),
                s, paper=paper) for s in seeds]
    return runs


SUITES = {}


def _experiment(module):
    """The ``run`` of ``mixmatch_tf.experiments.<module>``, imported when called."""
    def run(output_dir, seeds, **kwargs):
        import importlib
        return importlib.import_module(f"mixmatch_tf.experiments.{module}").run(
            output_dir, seeds, **kwargs)
    return run


def register(suite):
    SUITES[suite.name] = suite
    return suite


register(Suite(
    "digits_ssl", "Semi-supervised learning on the bundled digits",
    "MixMatch and the baselines of its tables with 20, 50 and 100 labels (class-balanced, drawn "
    "with the seed) and the rest of the 1,297 training images unlabeled; small CNN, 1,500 steps, "
    "the digits defaults of each method. The number is the median test error of the last 20 "
    "evaluations (every 50 steps), as the MixMatch paper reports.",
    digits_ssl_runs, metrics=(("median_last_20_test_error", "test error (%), median of the last 20 "
                               "evaluations"),),
    figures=("error_curves",)))

register(Suite(
    "digits_noisy", "Learning with noisy labels on the bundled digits",
    "ERM, mixup (alpha 8), Co-teaching and DivideMix with 20/50/80% symmetric and 40% "
    "asymmetric label noise (DivideMix's definitions; digits mapping 7<->1, 3->8, 5->6, 9->4); "
    "small CNN, the digits defaults of each method (DivideMix with one GMM, lambda_u 25 and "
    "alpha 4, the values it was measured with).",
    digits_noisy_runs, metrics=(("test_error", "last-epoch test error (%)"),
                                ("best_test_error", "best test error (%)")),
    figures=("error_curves", "division_auc", "loss_histograms")))

register(Suite(
    "fashion_ssl", "MixMatch and the SSL baselines on Fashion-MNIST (100 labels)",
    "The second real image data set: 60,000 training images of which 100 are labeled "
    "(class-balanced), 10,000 test images; small CNN, 2,000 steps, each method's default "
    "settings otherwise (EMA 0.999). Build the data first: sudo apt-get install "
    "dataset-fashion-mnist && python scripts/make_fashion_mnist.py --out=data/fashion_mnist.npz. "
    "Test error of the evaluated (EMA) network and of the trained network beside it.",
    fashion_ssl_runs, metrics=(("test_error", "test error (%), evaluated (EMA) network"),
                               ("student_test_error", "test error (%), trained network")),
    figures=("error_curves",)))

register(Suite(
    "fashion_noisy", "Learning with noisy labels on a 5,000-image Fashion-MNIST subset",
    "ERM, mixup (alpha 8), Co-teaching and DivideMix at 50% and 80% symmetric noise on a "
    "class-balanced 5,000-image subset of Fashion-MNIST (the full 10,000-image test set); "
    "small CNN, 60 epochs (DivideMix: 20 of them warm-up, one GMM, lambda_u 25, alpha 4); "
    "DivideMix (per-class GMM): one GMM "
    "per noisy-label class, alpha 0.5, lambda_u 0, 120 epochs, 10 of them warm-up, learning "
    "rate / 10 at epoch 90. Build the data first: "
    "python scripts/make_fashion_mnist.py --train_size=5000 --out=data/fashion_mnist_5k.npz.",
    fashion_noisy_runs,
    metrics=(("test_error", "last-epoch test error (%)"),) + CIFAR_NOISY_METRICS,
    figures=("error_curves", "division_auc")))

register(Suite(
    "dividemix_settings", "DivideMix's settings chosen from the data",
    "DivideMix with no setting given (chosen from the data after the warm-up) against its "
    "official settings (alpha 4, one GMM, lambda_u 0 at 20% symmetric and 40% asymmetric "
    "noise, 25 at 50% and 80%), ERM and Co-teaching (+ crop): the bundled digits at four "
    "noise settings (small CNN, the digits defaults of each method) and the 5,000-image "
    "Fashion-MNIST subset at 50% symmetric noise and with its look-alike pairs (T-shirt/top "
    "<-> Shirt, Pullover <-> Coat, Sneaker <-> Ankle boot) swapped at 40% (small CNN; ERM, "
    "Co-teaching and the official DivideMix 60 epochs, DivideMix 20 of them warm-up). Build "
    "the Fashion data first: python scripts/make_fashion_mnist.py --train_size=5000 "
    "--out=data/fashion_mnist_5k.npz.",
    dividemix_settings_runs,
    metrics=(("mean_last_10_test_error", "test error (%), mean of the last 10 epochs"),
             ("test_error", "last-epoch test error (%)")),
    figures=("error_curves",)))

register(Suite(
    "mixup_ablation_digits", "The mixup ablation table on the bundled digits",
    "Every row of the mixup paper's ablation table (mixing inputs and/or labels, all-class (AC) "
    "vs same-class (SC) partners, random (RP) vs nearest-neighbour (KNN, k=200) pairs, hidden "
    "layers, label smoothing, Gaussian input noise, and Dirichlet mixing of 3 examples) at "
    "weight decay 1e-4 and 5e-4; small CNN, 60 epochs, alpha 1, clean labels. The small CNN "
    "has two stages before its head, so its hidden-layer rows are layer 1 (after block1: two "
    "convs and a max-pool) and layer 2 (after block2: two convs and the global pool); the "
    "paper's layers 3-5 of PreAct ResNet-18 have no counterpart and are left out. The number "
    "is the median test error of the last 10 epochs.",
    mixup_ablation_digits_runs,
    metrics=(("median_last_10_test_error", "test error (%), median of the last 10 epochs"),)))

register(Suite(
    "digits_corrupted", "Memorisation of corrupted labels on the bundled digits (mixup Table 2)",
    "ERM, ERM + dropout, mixup and mixup + dropout with 20/50/80% symmetric label noise and the "
    "paper's alpha and dropout per cell; small CNN, 60 epochs. Training error on the corrupted "
    "labels is measured against the corrupted label: a low number means the noise was "
    "memorised.",
    corrupted_runs((("dataset", "digits"),)), metrics=CORRUPTED_METRICS,
    figures=("error_curves",)))

register(Suite(
    "tabular", "ERM and mixup on UCI tabular data (an MLP)",
    "mixup is not only for images: the UCI breast-cancer and wine data shipped with "
    "scikit-learn (20% stratified test split), a 2x128 MLP, 100 epochs, alpha 1.",
    tabular_runs, metrics=(("test_error", "test error (%)"),)))

register(Suite(
    "digits_behaviour", "Between training points and adversarial robustness on the digits",
    "ERM and mixup (alpha 1) trained on the clean digits (small CNN, 60 epochs); then, at "
    "x = lambda x_i + (1 - lambda) x_j for random training pairs, the share of predictions "
    "outside {y_i, y_j} and the input-gradient norm of the loss (Figure 2), and the test "
    "error under FGSM and iterative FGSM.",
    experiment=_experiment("behaviour")))

register(Suite(
    "toy2d", "Decision surfaces on a 2-D toy problem (mixup Figure 1b)",
    "Two half-moons, an MLP, ERM against mixup (alpha 1).",
    experiment=_experiment("toy2d")))

register(Suite(
    "gan2d", "GAN stabilisation on a 2-D mixture of 8 Gaussians (mixup Figure 5)",
    "A plain GAN against a GAN whose discriminator is trained with mixup (alpha 0.2).",
    experiment=_experiment("gan")))

register(Suite(
    "mixup_ablation_cifar10", "The mixup ablation table on CIFAR-10 (needs the data and a GPU)",
    "The presets under flags/presets/mixup_ablation/ (PreAct ResNet-18, 200 epochs).",
    mixup_ablation_cifar10_runs,
    metrics=(("median_last_10_test_error", "test error (%), median of the last 10 epochs"),)))

register(Suite(
    "cifar10_ssl", "MixMatch and baselines on CIFAR-10 (needs the TFDS data and a GPU)",
    "MixMatch Table 5: MixMatch at 250-4000 labels, the baselines at 4000 labels, with the "
    "official settings (flags/presets). Paper numbers: error %, mean of 5 label splits.",
    cifar10_ssl_runs, metrics=(("median_last_20_test_error", "test error (%)"),)))

register(Suite(
    "svhn_ssl", "MixMatch on SVHN (needs the TFDS data and a GPU)",
    "MixMatch Table 6 with the official settings (flags/presets).",
    svhn_ssl_runs, metrics=(("median_last_20_test_error", "test error (%)"),)))

register(Suite(
    "cifar10_noisy", "DivideMix on CIFAR-10 (needs the TFDS data and a GPU)",
    "DivideMix's CIFAR-10 table with the per-cell lambda_u and tau (flags/presets). Paper: "
    "error % of the mean of the last 10 epochs.",
    cifar_noisy_runs("cifar10", DIVIDEMIX_C10),
    metrics=CIFAR_NOISY_METRICS))

register(Suite(
    "cifar100_noisy", "DivideMix on CIFAR-100 (needs the TFDS data and a GPU)",
    "DivideMix's CIFAR-100 table with the per-cell lambda_u and tau (flags/presets). Paper: "
    "error % of the mean of the last 10 epochs.",
    cifar_noisy_runs("cifar100", DIVIDEMIX_C100),
    metrics=CIFAR_NOISY_METRICS))

register(Suite(
    "cifar10_mixup", "ERM and mixup on CIFAR-10 (needs the TFDS data and a GPU)",
    "PreAct ResNet-18, 200 epochs, weight decay 1e-4 (mixup paper ablation table). Paper: median "
    "test error of the last 10 epochs.",
    cifar10_mixup_runs, metrics=(("median_last_10_test_error", "test error (%)"),),
    figures=("error_curves",)))

register(Suite(
    "imagenet_mixup", "ERM and mixup on ImageNet-2012, the mixup paper's Table 1 (needs the "
    "data and GPUs)",
    "ResNet-50, ResNet-101, ResNeXt-101 32x4d and 64x4d for 90 and 200 epochs with the paper's "
    "recipe (flags/presets/mixup_imagenet/: batch 1,024, 0.1 -> 0.4 warm-up over 5 epochs, /10 "
    "after 30/60/80 or 60/120/180 epochs, alpha 0.2 for ResNets and 0.4 for ResNeXts), the data "
    "streamed from TFDS imagenet2012 or, with --train_flags=--dataset=folder:DIR, from the "
    "ImageNet folder layout. Paper: top-1 and top-5 validation error of the final network; "
    "ERM at 90 epochs is the paper's quote of Goyal et al. (ResNets, top-1 only) and of Xie et "
    "al. (ResNeXt-101 64x4d, 100 epochs).",
    imagenet_mixup_runs, metrics=(("test_error", "top-1 error (%)"),
                                  ("top5_test_error", "top-5 error (%)")),
    figures=("error_curves",)))

register(Suite(
    "cifar_mixup_archs", "ERM and mixup with three networks on CIFAR-10 and CIFAR-100, the "
    "mixup paper's Figure 3 (needs the TFDS data and a GPU)",
    "PreAct ResNet-18, WideResNet-28-10 and DenseNet-BC-190, 200 epochs of batch 128, lr 0.1 "
    "/10 after epochs 100 and 150 (WideResNet: 60, 120, 180, as the paper says), weight decay "
    "1e-4, alpha 1 (flags/presets/mixup_cifar_archs/). Ours: median test error of the last 10 "
    "epochs, as the paper's ablation table reports.",
    cifar_mixup_archs_runs,
    metrics=(("median_last_10_test_error", "test error (%), median of the last 10 epochs"),),
    figures=("error_curves",)))
