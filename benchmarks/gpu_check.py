"""One GPU check: training steps, AutoAttack and SGLD, every backend against PyTorch.

    python benchmarks/gpu_check.py [--device gpu|cpu] [--out runs/gpu_check]
        [--python jax=PATH tensorflow=PATH torch=PATH] [--sections steps autoattack sgld]

What `benchmarks/gpu_check.sh` runs after installing (read that script
first). Three sections, each framework in its own process:

- steps: seconds per training step of clean training, PGD-10 AT and TRADES
  (K = 10) of PreActResNet-18 and WRN-34-10 at batch 128 on 32x32x3, from
  `vs_pytorch.py`'s workers: its PyTorch reference loop (eval-mode attack,
  then a train-mode SGD update) and `kr.models.AT` / `kr.models.TRADES`
  through `fit` on JAX, TensorFlow and Keras' PyTorch backend (all of a
  framework's methods in one process, `--one-process`).
- autoattack: images/s of AutoAttack-standard (APGD-CE, APGD-T, FAB-T,
  Square; L-inf) on PreActResNet-18 with random weights, the labels set to
  the model's own predictions and epsilon = 0.1/255, so that (nearly)
  every image survives every attack: the cost per image of a fully robust
  model, the worst case (the table gives the robust accuracy: 1.0 means
  every attack ran its whole budget on every image). Ours on each backend,
  cold (compilation included) and warm (a second call); the reference is
  torchattacks' attacks at the standard budgets (100 steps, 5,000 queries;
  `autoattack_vs_reference.torchattacks_line_up`: torchattacks' own
  `AutoAttack` keeps 10 steps) in the same cascade, on the same
  architecture in PyTorch (`pip install --no-deps torchattacks==3.5.1`;
  skipped when it is not installed).
- sgld: samples/s of `kr.generation.LangevinSampler` (50 steps of SGLD with
  momentum 0.9 on the joint energy, PreActResNet-18, batches of 128)
  against the same chain written as a PyTorch loop (eval mode,
  `torch.autograd.grad`).

Ratios are ours / PyTorch's time (steps) or PyTorch's rate / ours
(images/s, samples/s): below 1 is faster than PyTorch. The issue's target
on a GPU: JAX <= 0.8.

--device cpu runs the same code on the CPU with small sizes (see SIZES) to
check the script end to end; its numbers are not the GPU's.

Writes `<out>/gpu_check.json` (everything measured, with versions and each
section's wall time) and `<out>/gpu_check.md` (the tables, as printed).
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

from _workers import run_worker

HERE = pathlib.Path(__file__).resolve().parent
VS_PYTORCH = str(HERE / "vs_pytorch.py")
BACKENDS = ("jax", "tensorflow", "torch")
SECTIONS = ("steps", "autoattack", "sgld")
METHODS = ("clean", "AT", "TRADES")
# Per device: training batch, AutoAttack images, SGLD samples, SGLD batch.
SIZES = {
    "gpu": {"batch": 128, "aa_images": 128, "samples": 512, "chains": 128},
    "cpu": {"batch": None, "aa_images": 8, "samples": 16, "chains": 8},
}
AA_EPSILON = 0.1 / 255
SGLD_STEPS, SGLD_STEP_SIZE, SGLD_MOMENTUM, SGLD_NOISE = 50, 1.0, 0.9, 0.001


# ---- workers -------------------------------------------------------------------


def _random_data(n, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, 32, 32, 3)).astype("float32")


def _keras_classifier(model_name):
    import keras

    import keras_robust as kr

    keras.utils.set_random_seed(0)
    if model_name == "small_cnn":
        return kr.architectures.SmallCNN(10, (32, 32, 3))
    return kr.architectures.PreActResNet18(10, (32, 32, 3))


def _torch_classifier(model_name, device):
    import torch
    import vs_pytorch

    torch.manual_seed(0)
    return vs_pytorch._torch_models()[model_name]().to(device).eval()


def _torch_device(args):
    import torch

    if args.device == "gpu":
        return torch.device("cuda")
    torch.set_num_threads(os.cpu_count())
    return torch.device("cpu")


def _torch_sync(args):
    import torch

    if args.device == "gpu":
        torch.cuda.synchronize()


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def _autoattack_worker(args):
    import numpy as np

    x = _random_data(args.images)
    if args.framework == "pytorch":
        import autoattack_vs_reference
        import torch

        device = _torch_device(args)
        net = _torch_classifier(args.model, device)
        images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)
        with torch.no_grad():
            labels = net(images).argmax(1)
        attacks = autoattack_vs_reference.torchattacks_line_up(net, "Linf", AA_EPSILON)

        def run():
            accuracy, _ = autoattack_vs_reference.torchattacks_cascade(
                net, images, labels, attacks, sync=lambda: _torch_sync(args)
            )
            return accuracy["square"]

        robust, warm = _timed(run)
        cold = warm
    else:
        import keras_robust as kr

        net = _keras_classifier(args.model)
        labels = np.argmax(net.predict(x, verbose=0), axis=1)
        attack = kr.evaluation.AutoAttack(epsilon=AA_EPSILON, seed=0)

        def run():
            _, after = attack.run(net, x, labels)
            return float(np.mean(after[attack.attack_names()[-1]]))

        _, cold = _timed(run)
        robust, warm = _timed(run)
    print(
        json.dumps(
            {
                "images": args.images,
                "robust_accuracy": robust,
                "cold_s": cold,
                "warm_s": warm,
                "images_per_s": args.images / warm,
            }
        )
    )


def _sgld_worker(args):
    import numpy as np

    labels = np.arange(args.samples) % 10
    if args.framework == "pytorch":
        import torch

        device = _torch_device(args)
        net = _torch_classifier(args.model, device)
        for parameter in net.parameters():
            parameter.requires_grad_(False)
        generator = torch.Generator(device=device).manual_seed(0)

        def chain(y):
            x = torch.rand((len(y), 3, 32, 32), generator=generator, device=device)
            velocity = torch.zeros_like(x)
            for _ in range(SGLD_STEPS):
                x.requires_grad_(True)
                energy = -net(x).gather(1, y[:, None]).sum()
                (gradient,) = torch.autograd.grad(energy, [x])
                velocity = SGLD_MOMENTUM * velocity - 0.5 * SGLD_STEP_SIZE * gradient
                noise = torch.randn(x.shape, generator=generator, device=device)
                x = (x.detach() + velocity + SGLD_NOISE * noise).clamp(0, 1)
            return x

        y_all = torch.from_numpy(labels).long().to(device)

        def run():
            for start in range(0, args.samples, args.chains):
                chain(y_all[start : start + args.chains])
            _torch_sync(args)

        chain(y_all[: args.chains])  # warm-up: cuDNN's set-up
        _torch_sync(args)
        _, warm = _timed(run)
        cold = warm
    else:
        import keras_robust as kr

        sampler = kr.generation.LangevinSampler(
            _keras_classifier(args.model),
            steps=SGLD_STEPS,
            step_size=SGLD_STEP_SIZE,
            noise_std=SGLD_NOISE,
            momentum=SGLD_MOMENTUM,
            batch_size=args.chains,
            seed=0,
        )
        _, cold = _timed(lambda: sampler.sample(labels, verbose=0))
        _, warm = _timed(lambda: sampler.sample(labels, verbose=0))
    print(
        json.dumps(
            {
                "samples": args.samples,
                "cold_s": cold,
                "warm_s": warm,
                "samples_per_s": args.samples / warm,
            }
        )
    )


# ---- parent --------------------------------------------------------------------


def _interpreters(pairs):
    """{"jax": path, ...} from --python's "framework=path" pairs."""
    interpreters = {}
    for pair in pairs or ():
        framework, separator, path = pair.partition("=")
        if not separator or framework not in BACKENDS + ("pytorch",):
            raise SystemExit(
                f"--python takes framework=path pairs with a framework among "
                f"{', '.join(BACKENDS)}; got {pair!r}."
            )
        if not os.access(path, os.X_OK):
            raise SystemExit(f"--python {pair}: {path} is not an executable.")
        interpreters[framework] = path
    # The PyTorch reference runs where Keras' PyTorch backend does.
    interpreters.setdefault("pytorch", interpreters.get("torch"))
    return interpreters


def _worker_backend(framework):
    # The PyTorch reference imports no Keras; any backend will do.
    return "torch" if framework == "pytorch" else framework


class Report:
    """The printed tables, kept for gpu_check.md."""

    def __init__(self):
        self.lines = []

    def __call__(self, line=""):
        print(line, flush=True)
        self.lines.append(line)

    def table(self, header, rows):
        self(f"| {' | '.join(header)} |")
        self(f"|{'|'.join('---' for _ in header)}|")
        for row in rows:
            self(f"| {' | '.join(row)} |")
        self()


def _steps_section(args, interpreters, sizes, report, results):
    rows = []
    for model in args.models:
        batch = sizes["batch"] or _vs_pytorch_cpu_batch(model)
        reference = None
        for framework in ("pytorch", *args.backends):
            arguments = ["--framework", framework, "--model", model]
            arguments += ["--batch", str(batch), "--device", args.device]
            arguments += ["--methods", *METHODS, "--min-epoch-seconds", "0.5"]
            result, error = run_worker(
                VS_PYTORCH,
                _worker_backend(framework),
                arguments,
                error_chars=2000,
                python=interpreters.get(framework),
            )
            entry = {"model": model, "framework": framework, "batch": batch}
            if result is None:
                results.append({**entry, "error": error})
                rows.append([model, framework, str(batch), f"failed: {error[-200:]}"])
                continue
            results.append({**entry, **result})
            if framework == "pytorch":
                reference = result
            cells = [f"{1e3 * result[m]:.1f}" for m in METHODS]
            ratios = [
                f"{result[m] / reference[m]:.2f}"
                if reference and framework != "pytorch"
                else ""
                for m in METHODS
            ]
            rows.append([model, framework, str(batch), *cells, *ratios])
    report(f"Training steps (ms per step; K = 10; device {args.device})")
    report()
    header = ["model", "framework", "batch", *METHODS]
    report.table(header + [f"{m} / pytorch" for m in METHODS], rows)


def _vs_pytorch_cpu_batch(model):
    import vs_pytorch

    return vs_pytorch.MODELS[model][0]


def _rate_section(kind, args, interpreters, sizes, report, results):
    if kind == "autoattack":
        arguments = ["--images", str(sizes["aa_images"])]
        rate, unit = "images_per_s", "images/s"
    else:
        arguments = [
            "--samples",
            str(sizes["samples"]),
            "--chains",
            str(sizes["chains"]),
        ]
        rate, unit = "samples_per_s", "samples/s"
    rows, reference = [], None
    for framework in ("pytorch", *args.backends):
        if (
            kind == "autoattack"
            and framework == "pytorch"
            and not _has_torchattacks(interpreters.get("pytorch"))
        ):
            rows.append([framework, "skipped: torchattacks is not installed"])
            continue
        result, error = run_worker(
            __file__,
            _worker_backend(framework),
            ["--section", kind, "--framework", framework, "--model", args.eval_model]
            + ["--device", args.device, *arguments],
            error_chars=2000,
            python=interpreters.get(framework),
        )
        if result is None:
            results.append({"framework": framework, "error": error})
            rows.append([framework, f"failed: {error[-200:]}"])
            continue
        results.append({"framework": framework, "model": args.eval_model, **result})
        if framework == "pytorch":
            reference = result
        ratio = (
            f"{reference[rate] / result[rate]:.2f}"
            if reference and framework != "pytorch"
            else ""
        )
        cells = [framework, f"{result[rate]:.1f}", f"{result['cold_s']:.1f}"]
        cells += [f"{result['warm_s']:.1f}", ratio]
        if kind == "autoattack":
            cells.append(f"{result['robust_accuracy']:.3f}")
        rows.append(cells)
    title = {
        "autoattack": f"AutoAttack-standard, L-inf {AA_EPSILON * 255:.1f}/255, "
        f"{sizes['aa_images']} images, {args.eval_model} (random weights, "
        "labels = its predictions)",
        "sgld": f"SGLD, {SGLD_STEPS} steps, momentum {SGLD_MOMENTUM}, "
        f"{sizes['samples']} samples in batches of {sizes['chains']}, "
        f"{args.eval_model}",
    }[kind]
    report(title)
    report()
    header = ["framework", unit, "cold s", "warm s", "time / pytorch"]
    if kind == "autoattack":
        header.append("robust accuracy")
    report.table(header, rows)


def _has_torchattacks(python):
    import subprocess

    check = [python or sys.executable, "-c", "import torchattacks"]
    return subprocess.run(check, capture_output=True).returncode == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--out", default="runs/gpu_check")
    parser.add_argument(
        "--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS
    )
    parser.add_argument(
        "--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["preact_resnet18", "wrn34_10"],
        choices=("small_cnn", "preact_resnet18", "wrn34_10"),
        help="the training-step section's models",
    )
    parser.add_argument(
        "--eval-model",
        default="preact_resnet18",
        choices=("small_cnn", "preact_resnet18"),
        help="the AutoAttack and SGLD sections' model",
    )
    parser.add_argument(
        "--python",
        nargs="+",
        metavar="FRAMEWORK=PATH",
        help="the interpreter of each framework's workers (default: this one)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--framework", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chains", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        {"autoattack": _autoattack_worker, "sgld": _sgld_worker}[args.section](args)
        return

    interpreters = _interpreters(args.python)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = SIZES[args.device]
    report = Report()
    report(
        f"gpu_check --device {args.device}: {platform.node()}, "
        f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    report()
    results = {"device": args.device, "sizes": sizes, "seconds": {}}
    start = time.perf_counter()
    for section in args.sections:
        section_start = time.perf_counter()
        results[section] = []
        if section == "steps":
            _steps_section(args, interpreters, sizes, report, results[section])
        else:
            _rate_section(section, args, interpreters, sizes, report, results[section])
        results["seconds"][section] = time.perf_counter() - section_start
        # Written after every section: a run cut short keeps what it measured.
        (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    total = time.perf_counter() - start
    results["seconds"]["total"] = total
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in results["seconds"].items())
    report(f"Wall time: {seconds}")
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    (out / "gpu_check.md").write_text("\n".join(report.lines) + "\n")
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")


if __name__ == "__main__":
    main()
