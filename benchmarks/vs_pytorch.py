"""Training step time of keras_robust vs the PyTorch reference loop (CPU).

    python benchmarks/vs_pytorch.py [--backends tensorflow jax] [--models small_cnn preact_resnet18]

The PyTorch side is the loop of the methods' reference code, written here
from the papers' algorithms: the attack with the model in eval mode and
`torch.autograd.grad` on the input (PGD-K, uniform start, sign step,
projection, clip; TRADES: KL to the natural prediction from a 0.001 N(0, 1)
start), then `model.train()` and one SGD update (AT: CE(f(x*)); TRADES:
CE(f(x)) + beta KL(f(x) || f(x*))). keras_robust runs `kr.models.AT`
(with `attack_training_mode=False`, the same eval-mode attack) and
`kr.models.TRADES` through `fit`, with the compile settings a user gets by
default (`jit_compile="auto"`: a TensorFlow graph on CPU, XLA on JAX).

The same architecture on both sides (`kr.architectures.SmallCNN` and
`PreActResNet18`, rebuilt in PyTorch below), the same batch, random 32x32x3
data, SGD with momentum, K = 10 attack steps. Each framework runs in its own
process, with all CPU cores (PyTorch: `torch.set_num_threads(os.cpu_count())`,
TensorFlow and JAX use all cores by default); this parent prints one table,
so the ratios come from one run. A step's time is the best epoch time over
the timed epochs divided by the steps per epoch, after one warm-up epoch
(which includes compilation).

Needs PyTorch (CPU): `pip install -e ".[benchmark]"`.
"""

import argparse
import json
import os
import time

from _workers import print_header
from _workers import run_worker
from _workers import timed_fit

MODELS = {
    # name: (batch, steps per epoch, timed epochs)
    "small_cnn": (128, 4, 3),
    "preact_resnet18": (32, 2, 2),
}
METHODS = ("clean", "AT", "TRADES")
ATTACK_STEPS = 10
EPSILON, STEP_SIZE, BETA = 8 / 255, 2 / 255, 6.0


def _data(batch, steps_per_epoch):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch * steps_per_epoch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=len(x))
    return x, y


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

    return {"small_cnn": SmallCNN, "preact_resnet18": PreActResNet18}


def _torch_worker(model_name):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    batch, steps_per_epoch, timed = MODELS[model_name]
    x_all, y_all = _data(batch, steps_per_epoch)
    x_all = torch.from_numpy(x_all).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(y_all).long()

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

    results = {}
    for method in METHODS:
        torch.manual_seed(0)
        model = _torch_models()[model_name]()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        epoch_times = []
        for _ in range(1 + timed):
            start = time.perf_counter()
            for i in range(steps_per_epoch):
                chunk = slice(i * batch, (i + 1) * batch)
                step(method, model, optimizer, x_all[chunk], y_all[chunk])
            epoch_times.append(time.perf_counter() - start)
        results[method] = min(epoch_times[1:]) / steps_per_epoch
    results["threads"] = torch.get_num_threads()
    print(json.dumps(results))


# ---- keras_robust --------------------------------------------------------------


def _keras_worker(model_name):
    import keras

    import keras_robust as kr

    batch, steps_per_epoch, timed = MODELS[model_name]
    x, y = _data(batch, steps_per_epoch)

    def build():
        if model_name == "small_cnn":
            return kr.architectures.SmallCNN(10, (32, 32, 3))
        return kr.architectures.PreActResNet18(10, (32, 32, 3))

    results = {}
    for method in METHODS:
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
        epoch_times = timed_fit(model, x, y, batch, epochs=1 + timed)
        results[method] = min(epoch_times[1:]) / steps_per_epoch
    print(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--framework", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.framework == "torch":
            _torch_worker(args.model)
        else:
            _keras_worker(args.model)
        return

    print(f"CPU cores: {os.cpu_count()}; attack K = {ATTACK_STEPS}; seconds per step")
    print_header(
        f"{'model':<16} {'framework':<11} {'batch':>5} {'clean':>8} {'AT':>8} "
        f"{'TRADES':>8} {'AT/torch':>9} {'TRADES/torch':>13}"
    )
    for model_name in args.models:
        batch = MODELS[model_name][0]
        rows = [("pytorch", "torch")] + [(b, b) for b in args.backends]
        reference = None
        for label, framework in rows:
            result, error = run_worker(
                __file__,
                framework if framework != "torch" else "tensorflow",
                ["--framework", framework, "--model", model_name],
            )
            if result is None:
                print(f"{model_name:<16} {label:<11} failed: {error}")
                continue
            if framework == "torch":
                reference = result
                label = f"pytorch/{result['threads']}t"
            ratios = ["", ""]
            if reference is not None and framework != "torch":
                ratios = [f"{result[m] / reference[m]:.2f}" for m in ("AT", "TRADES")]
            print(
                f"{model_name:<16} {label:<11} {batch:>5} {result['clean']:>8.3f} "
                f"{result['AT']:>8.3f} {result['TRADES']:>8.3f} "
                f"{ratios[0]:>9} {ratios[1]:>13}"
            )


if __name__ == "__main__":
    main()
