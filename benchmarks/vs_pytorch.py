"""Training step time of keras_robust vs the PyTorch reference loop (CPU or GPU).

    python benchmarks/vs_pytorch.py [--backends tensorflow jax torch] [--models small_cnn preact_resnet18]
    python benchmarks/vs_pytorch.py --device gpu --backends jax [--batch 128 512]

The PyTorch side is the loop of the methods' reference code, written here
from the papers' algorithms: the attack with the model in eval mode and
`torch.autograd.grad` on the input (PGD-K, uniform start, sign step,
projection, clip; TRADES: KL to the natural prediction from a 0.001 N(0, 1)
start), then `model.train()` and one SGD update (AT: CE(f(x*)); TRADES:
CE(f(x)) + beta KL(f(x) || f(x*))). keras_robust runs `kr.models.AT`
(with `attack_training_mode=False`, the same eval-mode attack) and
`kr.models.TRADES` through `fit`, with the compile settings a user gets by
default (`jit_compile="auto"`: a TensorFlow graph on CPU, XLA on JAX and on
TensorFlow with a GPU).

The same architecture on both sides (`kr.architectures.SmallCNN` and
`PreActResNet18`, rebuilt in PyTorch below), the same batch, random 32x32x3
data, SGD with momentum, K = 10 attack steps. Each framework runs in its own
process; this parent prints one table, so the ratios come from one run. The
table also gives each framework's AT / ((K+1) clean) and TRADES / ((K+2)
clean): an AT step is K attack passes plus one training step.

--device cpu (default): each process uses all CPU cores (PyTorch:
`torch.set_num_threads(os.cpu_count())`, TensorFlow and JAX use all cores by
default). A step's time is the best epoch time over the timed epochs divided
by the steps per epoch, after one warm-up epoch (which includes compilation).

--device gpu: PyTorch puts the model on CUDA and moves each batch there from
pinned host memory (`.to("cuda", non_blocking=True)`, as from a `DataLoader`
with `pin_memory=True`); Keras gets the same batches as NumPy arrays through
`fit` (a generator that cycles over 8 distinct batches) and runs on JAX's
(or TensorFlow's) default device, the GPU. Every epoch is timed between two
synchronisations (`torch.cuda.synchronize()`; `jax.block_until_ready` on all
the model's and optimizer's variables, which `fit` has written back at the
epoch's end). After a warm-up epoch (compilation, cuDNN's set-up) a probe
epoch sets the steps per epoch so that a timed epoch lasts at least
--min-epoch-seconds; a step's time is the best of the timed epochs divided
by the steps. Each Keras method runs in its own process, which also reports
peak GPU memory: `memory_stats()["peak_bytes_in_use"]` of the device (JAX;
the process's peak, compilation included) and XLA's memory analysis of the
compiled `train_step` (temporaries, and arguments + outputs + temporaries,
JAX only); PyTorch reports `torch.cuda.max_memory_allocated()` per method.

Needs PyTorch: `pip install -e ".[benchmark]"` (a CPU build for --device cpu).
"""

import argparse
import json
import math
import os
import sys
import time

from _workers import print_header
from _workers import run_worker
from _workers import timed_fit

MODELS = {
    # name: (batch, steps per epoch, timed epochs), for --device cpu
    "small_cnn": (128, 4, 3),
    "preact_resnet18": (32, 2, 2),
    # 46M parameters: on CPU only with --models wrn34_10 (gpu_check.sh's CPU path).
    "wrn34_10": (4, 1, 1),
}
DEFAULT_MODELS = ("small_cnn", "preact_resnet18")
# --device gpu: batches per model; steps per epoch come from a probe epoch.
GPU_BATCHES = {"small_cnn": (128, 512), "preact_resnet18": (128,), "wrn34_10": (128,)}
GPU_TIMED_EPOCHS = 3
GPU_DISTINCT_BATCHES = 8
GPU_PROBE_STEPS = 10
METHODS = ("clean", "AT", "TRADES")
ATTACK_STEPS = 10
EPSILON, STEP_SIZE, BETA = 8 / 255, 2 / 255, 6.0


def _data(batch, steps_per_epoch):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch * steps_per_epoch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=len(x))
    return x, y


def _steps_for(seconds_per_step, args):
    """Steps per timed epoch on GPU: --steps, else enough for --min-epoch-seconds."""
    if args.steps:
        return args.steps
    return max(GPU_PROBE_STEPS, math.ceil(args.min_epoch_seconds / seconds_per_step))


# ---- PyTorch -----------------------------------------------------------------


def _torch_models():
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        """kr.architectures.SmallCNN(10, (32, 32, 3)): two conv blocks, dense."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(64 * 8 * 8, 128),
                nn.ReLU(),
                nn.Linear(128, 10),
            )

        def forward(self, x):
            return self.features(x)

    class PreActBlock(nn.Module):
        def __init__(self, in_filters, filters, stride):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(in_filters)
            self.conv1 = nn.Conv2d(in_filters, filters, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(filters)
            self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1, bias=False)
            self.shortcut = None
            if stride != 1 or in_filters != filters:
                self.shortcut = nn.Conv2d(in_filters, filters, 1, stride, bias=False)

        def forward(self, x):
            out = torch.relu(self.bn1(x))
            shortcut = self.shortcut(out) if self.shortcut is not None else x
            out = self.conv1(out)
            out = self.conv2(torch.relu(self.bn2(out)))
            return out + shortcut

    class PreActResNet18(nn.Module):
        """kr.architectures.PreActResNet18(10): stem, 4 x 2 blocks, BN, head."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            blocks, in_filters = [], 64
            for filters, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                for block in range(2):
                    blocks.append(
                        PreActBlock(in_filters, filters, stride if block == 0 else 1)
                    )
                    in_filters = filters
            self.blocks = nn.Sequential(*blocks)
            self.bn = nn.BatchNorm2d(512)
            self.linear = nn.Linear(512, 10)

        def forward(self, x):
            out = torch.relu(self.bn(self.blocks(self.stem(x))))
            return self.linear(out.mean(dim=(2, 3)))

    def wide_resnet_34_10():
        """RobustBench's WideResNet class (the one kr.architectures.WideResNet
        is tested against in tests/architectures), loaded by path:
        robustbench's __init__ imports timm, which `--no-deps` leaves out."""
        import importlib.util
        import pathlib

        spec = importlib.util.find_spec("robustbench")
        if spec is None:
            raise SystemExit(
                "wrn34_10 needs robustbench's architecture files: "
                "pip install --no-deps robustbench==1.1.1"
            )
        path = pathlib.Path(spec.submodule_search_locations[0])
        path = path / "model_zoo" / "architectures" / "wide_resnet.py"
        module_spec = importlib.util.spec_from_file_location("rb_wide_resnet", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.WideResNet(depth=34, widen_factor=10)

    return {
        "small_cnn": SmallCNN,
        "preact_resnet18": PreActResNet18,
        "wrn34_10": wide_resnet_34_10,
    }


def _torch_worker(args):
    import torch
    import torch.nn.functional as F

    gpu = args.device == "gpu"
    if gpu:
        device = torch.device("cuda")
    else:
        device = torch.device("cpu")
        torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    batch = args.batch
    if gpu:
        steps_per_epoch, timed, distinct = None, GPU_TIMED_EPOCHS, GPU_DISTINCT_BATCHES
    else:
        _, steps_per_epoch, timed = MODELS[args.model]
        distinct = steps_per_epoch
    x_all, y_all = _data(batch, distinct)
    x_all = torch.from_numpy(x_all).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(y_all).long()
    if gpu:
        x_all, y_all = x_all.pin_memory(), y_all.pin_memory()
    batches = [
        (x_all[i * batch : (i + 1) * batch], y_all[i * batch : (i + 1) * batch])
        for i in range(distinct)
    ]

    def pgd(model, x, y):
        model.eval()
        x_adv = (x + torch.empty_like(x).uniform_(-EPSILON, EPSILON)).clamp(0, 1)
        for _ in range(ATTACK_STEPS):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, [x_adv])
            x_adv = x_adv.detach() + STEP_SIZE * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - EPSILON), x + EPSILON).clamp(0, 1)
        return x_adv.detach()

    def trades_attack(model, x):
        model.eval()
        with torch.no_grad():
            natural = F.softmax(model(x), dim=1)
        x_adv = x + 0.001 * torch.randn_like(x)
        for _ in range(ATTACK_STEPS):
            x_adv.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), natural, reduction="sum")
            (grad,) = torch.autograd.grad(kl, [x_adv])
            x_adv = x_adv.detach() + STEP_SIZE * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - EPSILON), x + EPSILON).clamp(0, 1)
        return x_adv.detach()

    def step(method, model, optimizer, x, y):
        if method == "AT":
            x = pgd(model, x, y)
        elif method == "TRADES":
            x_adv = trades_attack(model, x)
        model.train()
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if method == "TRADES":
            kl = F.kl_div(
                F.log_softmax(model(x_adv), dim=1),
                F.softmax(logits, dim=1),
                reduction="batchmean",
            )
            loss = loss + BETA * kl
        loss.backward()
        optimizer.step()

    def sync():
        if gpu:
            torch.cuda.synchronize()

    def epoch_seconds(method, model, optimizer, steps):
        sync()
        start = time.perf_counter()
        for i in range(steps):
            x, y = batches[i % len(batches)]
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            step(method, model, optimizer, x, y)
        sync()
        return time.perf_counter() - start

    results = {"steps": {}, "peak_bytes": {}}
    for method in args.methods:
        torch.manual_seed(0)
        model = _torch_models()[args.model]().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        if gpu:
            torch.cuda.reset_peak_memory_stats()
            epoch_seconds(method, model, optimizer, 2)  # warm-up: cuDNN set-up
            probe = epoch_seconds(method, model, optimizer, GPU_PROBE_STEPS)
            steps = _steps_for(probe / GPU_PROBE_STEPS, args)
            epoch_times = [
                epoch_seconds(method, model, optimizer, steps) for _ in range(timed)
            ]
            results["peak_bytes"][method] = torch.cuda.max_memory_allocated()
        else:
            steps = steps_per_epoch
            epoch_times = [
                epoch_seconds(method, model, optimizer, steps) for _ in range(1 + timed)
            ][1:]
        results[method] = min(epoch_times) / steps
        results["steps"][method] = steps
        del model, optimizer
    results["threads"] = torch.get_num_threads()
    results["version"] = torch.__version__
    if gpu:
        results["device_name"] = torch.cuda.get_device_name()
        results["cudnn"] = torch.backends.cudnn.version()
    print(json.dumps(results))


# ---- keras_robust --------------------------------------------------------------


def _keras_gpu_epochs(model, batches, steps, epochs):
    """Fits `epochs` epochs of `steps` batches; each epoch's synchronised time."""
    import keras

    def sync():
        if keras.backend.backend() == "jax":
            import jax

            variables = model.variables + model.optimizer.variables
            jax.block_until_ready([v.value for v in variables])
        else:  # reading a value back waits for the device
            for v in model.trainable_variables:
                keras.ops.convert_to_numpy(v)

    times = []

    class SyncedEpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            sync()
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            sync()  # `fit` wrote the state back to the variables before this
            times.append(time.perf_counter() - self.start)

    def forever():
        while True:
            yield from batches

    model.fit(
        forever(),
        steps_per_epoch=steps,
        epochs=epochs,
        verbose=0,
        callbacks=[SyncedEpochTimer()],
    )
    return times


def _xla_memory(model, batch):
    """XLA's memory analysis of the compiled `train_step` on one batch (JAX)."""
    import jax
    import numpy as np

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    x, y = batch
    data = (jax.numpy.asarray(x), jax.numpy.asarray(np.int32(y)))
    analysis = (
        jax.jit(model.train_step, donate_argnums=0)
        .lower(state, data)
        .compile()
        .memory_analysis()
    )
    temp = analysis.temp_size_in_bytes
    total = (
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        - analysis.alias_size_in_bytes
        + temp
    )
    return {"temp": temp, "total": total}


def _keras_worker(args):
    import keras

    import keras_robust as kr

    gpu = args.device == "gpu"
    batch = args.batch
    if gpu:
        x, y = _data(batch, GPU_DISTINCT_BATCHES)
        batches = [
            (x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch])
            for i in range(GPU_DISTINCT_BATCHES)
        ]
    else:
        _, steps_per_epoch, timed = MODELS[args.model]
        x, y = _data(batch, steps_per_epoch)

    def build():
        if args.model == "small_cnn":
            return kr.architectures.SmallCNN(10, (32, 32, 3))
        if args.model == "wrn34_10":
            return kr.architectures.WideResNet34_10(input_shape=(32, 32, 3))
        return kr.architectures.PreActResNet18(10, (32, 32, 3))

    results = {"steps": {}, "first_epoch_s": {}, "peak_bytes": {}, "xla": {}}
    for method in args.methods:
        keras.utils.set_random_seed(0)
        net = build()
        kwargs = dict(epsilon=EPSILON, step_size=STEP_SIZE, steps=ATTACK_STEPS, seed=0)
        if method == "clean":
            model, compile_kwargs = (
                net,
                {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
            )
        elif method == "AT":
            model = kr.models.AT(net, attack_training_mode=False, **kwargs)
            compile_kwargs = {}
        else:
            model = kr.models.TRADES(net, beta=BETA, **kwargs)
            compile_kwargs = {}
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9), **compile_kwargs
        )
        if gpu:
            (first,) = _keras_gpu_epochs(model, batches, 2, 1)  # compiles
            (probe,) = _keras_gpu_epochs(model, batches, GPU_PROBE_STEPS, 1)
            steps = _steps_for(probe / GPU_PROBE_STEPS, args)
            epoch_times = _keras_gpu_epochs(model, batches, steps, GPU_TIMED_EPOCHS)
            results["first_epoch_s"][method] = first
            if keras.backend.backend() == "jax":
                import jax

                stats = jax.devices()[0].memory_stats() or {}
                results["peak_bytes"][method] = stats.get("peak_bytes_in_use")
                if args.xla_memory:
                    results["xla"][method] = _xla_memory(model, batches[0])
        else:
            steps = steps_per_epoch
            epoch_times = timed_fit(model, x, y, batch, epochs=1 + timed)[1:]
        results[method] = min(epoch_times) / steps
        results["steps"][method] = steps
    results["versions"] = {"keras": keras.__version__}
    if keras.backend.backend() == "jax":
        import jax
        import jaxlib

        results["versions"].update(jax=jax.__version__, jaxlib=jaxlib.__version__)
        results["device_name"] = jax.devices()[0].device_kind
    print(json.dumps(results))


# ---- parent --------------------------------------------------------------------


def _run(framework, model_name, batch, methods, args):
    arguments = ["--framework", framework, "--model", model_name]
    arguments += ["--batch", str(batch), "--device", args.device]
    arguments += ["--methods", *methods]
    arguments += ["--min-epoch-seconds", str(args.min_epoch_seconds)]
    if args.steps:
        arguments += ["--steps", str(args.steps)]
    if args.xla_memory:
        arguments += ["--xla-memory"]
    backend = framework if framework != "pytorch" else "tensorflow"
    return run_worker(__file__, backend, arguments, error_chars=2000)


def _measure(framework, model_name, batch, args):
    """One framework's results for all methods, or (None, error)."""
    if args.device == "cpu" or framework == "pytorch" or args.one_process:
        return _run(framework, model_name, batch, METHODS, args)
    # GPU, Keras: one process per method, so that each peak memory is its own.
    merged = {}
    for method in METHODS:
        result, error = _run(framework, model_name, batch, [method], args)
        if result is None:
            return None, f"{method}: {error}"
        for key, value in result.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key].update(value)
            else:
                merged[key] = value
    return merged, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument(
        "--models", nargs="+", default=list(DEFAULT_MODELS), choices=MODELS
    )
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        help="batch sizes for every model (default: cpu: SmallCNN 128, "
        "PreActResNet18 32; gpu: SmallCNN 128 and 512, PreActResNet18 128)",
    )
    parser.add_argument(
        "--min-epoch-seconds",
        type=float,
        default=0.5,
        help="gpu: the steps per epoch make a timed epoch last at least this",
    )
    parser.add_argument("--steps", type=int, help="gpu: fixed steps per epoch")
    parser.add_argument(
        "--xla-memory",
        action="store_true",
        help="gpu, JAX: also XLA's memory analysis of train_step (one more compile)",
    )
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="gpu: all of a framework's methods in one process (faster; the "
        "peak memory is then the largest of the three)",
    )
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--framework", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--methods", nargs="+", default=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.batch = args.batch[0]
        if args.framework == "pytorch":
            _torch_worker(args)
        else:
            _keras_worker(args)
        return

    gpu = args.device == "gpu"
    unit, scale = ("ms", 1e3) if gpu else ("s", 1.0)
    where = "GPU" if gpu else f"CPU cores: {os.cpu_count()}"
    print(f"{where}; attack K = {ATTACK_STEPS}; {unit} per step", flush=True)
    print_header(
        f"{'model':<16} {'framework':<14} {'batch':>5} {'clean':>8} {'AT':>8} "
        f"{'TRADES':>8} {'AT/torch':>9} {'TRADES/torch':>13} "
        f"{'AT/(K+1)c':>10} {'TRADES/(K+2)c':>14}"
    )
    sys.stdout.flush()
    raw, memory_rows = [], []
    for model_name in args.models:
        if args.batch:
            batches = args.batch
        elif gpu:
            batches = GPU_BATCHES[model_name]
        else:
            batches = (MODELS[model_name][0],)
        for batch in batches:
            # "pytorch": the reference loop; "torch": keras_robust on Keras' torch backend.
            rows = [("pytorch", "pytorch")] + [(b, b) for b in args.backends]
            reference = None
            for label, framework in rows:
                result, error = _measure(framework, model_name, batch, args)
                if result is None:
                    print(f"{model_name:<16} {label:<14} failed: {error}", flush=True)
                    continue
                raw.append(
                    {
                        "model": model_name,
                        "framework": framework,
                        "batch": batch,
                        **result,
                    }
                )
                if framework == "pytorch":
                    reference = result
                    label = "pytorch" if gpu else f"pytorch/{result['threads']}t"
                ratios = ["", ""]
                if reference is not None and framework != "pytorch":
                    ratios = [
                        f"{result[m] / reference[m]:.2f}" for m in ("AT", "TRADES")
                    ]
                at_bound = result["AT"] / ((ATTACK_STEPS + 1) * result["clean"])
                trades_bound = result["TRADES"] / ((ATTACK_STEPS + 2) * result["clean"])
                print(
                    f"{model_name:<16} {label:<14} {batch:>5} "
                    f"{result['clean'] * scale:>8.3f} {result['AT'] * scale:>8.3f} "
                    f"{result['TRADES'] * scale:>8.3f} "
                    f"{ratios[0]:>9} {ratios[1]:>13} "
                    f"{at_bound:>10.2f} {trades_bound:>14.2f}",
                    flush=True,
                )
                if gpu:
                    memory_rows.append((model_name, label, batch, result))
    if gpu and memory_rows:
        print()
        print("Steps per timed epoch, and peak GPU memory (MiB):")
        print(
            "  torch: torch.cuda.max_memory_allocated(); jax peak: the process's "
            "peak_bytes_in_use;"
        )
        print(
            "  xla temp / xla total: XLA's memory analysis of the compiled train_step"
        )
        print_header(
            f"{'model':<16} {'framework':<14} {'batch':>5} {'measure':<10} "
            f"{'clean':>9} {'AT':>9} {'TRADES':>9} {'AT/clean':>9} {'TRADES/clean':>13}"
        )
        for model_name, label, batch, result in memory_rows:
            measures = [("steps", result["steps"], 1)]
            measures.append(("peak", result.get("peak_bytes", {}), 2**20))
            for key in ("temp", "total"):
                xla = result.get("xla", {})
                if xla:
                    values = {m: xla[m][key] for m in xla}
                    measures.append((f"xla {key}", values, 2**20))
            for name, values, divisor in measures:
                if not values or any(values.get(m) is None for m in METHODS):
                    continue
                if name == "steps":
                    cells = [f"{values[m]:>9d}" for m in METHODS]
                    ratios = ["", ""]
                else:
                    cells = [f"{values[m] / divisor:>9.1f}" for m in METHODS]
                    ratios = [
                        f"{values[m] / values['clean']:.2f}" for m in ("AT", "TRADES")
                    ]
                print(
                    f"{model_name:<16} {label:<14} {batch:>5} {name:<10} "
                    f"{' '.join(cells)} {ratios[0]:>9} {ratios[1]:>13}"
                )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(raw, file, indent=1)


if __name__ == "__main__":
    main()
