"""Converting and loading a WRN-70-16 RobustBench checkpoint, and its inference speed.

    python benchmarks/zoo_load.py [--backends tensorflow jax torch] [--depth 70 --width 16] [--batch 8] [--repeats 3]

Makes a RobustBench-style checkpoint of DeepMind's WRN-70-16 (Swish; the
architecture of `Gowal2020Uncovering_70_16`, `Rebuffi2021Fixing_70_16_*`,
... in RobustBench's `dm_wide_resnet.py`, random weights: the real files
cannot be downloaded here) as `.pt` and `.safetensors`, then, in a fresh
process per Keras backend, times

- build: constructing `kr.architectures.DMWideResNet(70, 16)` (weight init);
- read: `kr.architectures.torch_weights.read_state_dict` of each file;
- convert: `load_torch_weights` from the read state_dict (checks, layout
  transposes, assignment);

and checks the parameter count against PyTorch's class. Then inference
throughput (images/s, inference mode, CPU) of the converted model
(`predict_on_batch`, after a warm-up call) against the PyTorch class
(`torch.no_grad`, eval mode) on the same CPU threads, and the max relative
logit difference. PyTorch is measured in its own process too.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def _reference_module():
    import importlib.util
    import pathlib

    spec = importlib.util.find_spec("robustbench")
    path = (
        pathlib.Path(spec.submodule_search_locations[0])
        / "model_zoo"
        / "architectures"
        / "dm_wide_resnet.py"
    )
    module_spec = importlib.util.spec_from_file_location("rb_dm_wide_resnet", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _images(batch):
    return np.random.default_rng(0).uniform(size=(batch, 32, 32, 3)).astype("float32")


def make_checkpoints(folder, depth, width):
    import torch
    from safetensors.torch import save_file

    dm = _reference_module()
    torch.manual_seed(0)
    model, seconds = _timed(
        lambda: dm.DMWideResNet(depth=depth, width=width, activation_fn=dm.Swish)
    )
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in state.items()}}, folder + "/w.pt"
    )
    save_file(state, folder + "/w.safetensors")
    return {
        "torch_build_s": seconds,
        "parameters_torch": sum(p.numel() for p in model.parameters()),
        "file_mb": os.path.getsize(folder + "/w.pt") / 2**20,
    }


def torch_worker(folder, depth, width, batch, repeats):
    import torch

    dm = _reference_module()
    model = dm.DMWideResNet(depth=depth, width=width, activation_fn=dm.Swish)
    (state, read_s) = _timed(lambda: torch.load(folder + "/w.pt", weights_only=True))
    state = {k.removeprefix("module."): v for k, v in state["state_dict"].items()}
    _, load_s = _timed(lambda: model.load_state_dict(state))
    model.eval()
    x = torch.from_numpy(_images(batch).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        logits = model(x).numpy()
        _, seconds = _timed(lambda: [model(x) for _ in range(repeats)])
    np.save(folder + "/torch_logits.npy", logits)
    return {
        "framework": "pytorch",
        "threads": torch.get_num_threads(),
        "read_pt_s": read_s,
        "load_state_dict_s": load_s,
        "images_per_s": batch * repeats / seconds,
    }


def keras_worker(folder, depth, width, batch, repeats):
    # torch first (before TensorFlow), and outside the timings: reading
    # .pt files needs it, and its import is not part of reading.
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    import keras

    import keras_robust as kr

    model, build_s = _timed(lambda: kr.architectures.DMWideResNet(depth, width))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    result = {"framework": keras.backend.backend(), "build_s": build_s}
    read = kr.architectures.torch_weights.read_state_dict
    state, result["read_safetensors_s"] = _timed(
        lambda: read(folder + "/w.safetensors")
    )
    try:
        _, result["read_pt_s"] = _timed(lambda: read(folder + "/w.pt"))
    except ImportError:
        result["read_pt_s"] = None
    _, result["convert_s"] = _timed(
        lambda: kr.architectures.load_torch_weights(model, state)
    )
    result["parameters_keras"] = trainable
    x = _images(batch)
    logits = np.asarray(model.predict_on_batch(x))  # warm-up (traces/compiles)
    _, seconds = _timed(lambda: [model.predict_on_batch(x) for _ in range(repeats)])
    result["images_per_s"] = batch * repeats / seconds
    reference = np.load(folder + "/torch_logits.npy")
    result["max_relative_logit_difference"] = float(
        np.max(np.abs(logits - reference)) / np.max(np.abs(reference))
    )
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--depth", type=int, default=70)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = (args.folder, args.depth, args.width, args.batch, args.repeats)
    if args.worker == "pytorch":
        print(json.dumps(torch_worker(*sizes)))
        return
    if args.worker is not None:
        print(json.dumps(keras_worker(*sizes)))
        return
    with tempfile.TemporaryDirectory() as folder:
        made = make_checkpoints(folder, args.depth, args.width)
        rows = []
        for worker in ["pytorch", *args.backends]:
            env = dict(
                os.environ, KERAS_BACKEND=worker if worker != "pytorch" else "jax"
            )
            command = [
                sys.executable,
                __file__,
                "--worker",
                worker,
                "--folder",
                folder,
                "--depth",
                str(args.depth),
                "--width",
                str(args.width),
                "--batch",
                str(args.batch),
                "--repeats",
                str(args.repeats),
            ]
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, check=False
            )
            if done.returncode != 0:
                print(f"{worker} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    torch_speed = next(r["images_per_s"] for r in rows if r["framework"] == "pytorch")
    print(
        f"DMWideResNet-{args.depth}-{args.width} (Swish): PyTorch "
        f"{made['parameters_torch']:,} parameters, checkpoint {made['file_mb']:.0f} MB; "
        f"batch {args.batch}, {args.repeats} timed calls, {os.cpu_count()} CPUs"
    )
    print(
        f"{'framework':<12}{'params ok':>10}{'build s':>9}{'read .pt s':>11}"
        f"{'read .st s':>11}{'convert s':>10}{'img/s':>8}{'vs torch':>9}{'max rel diff':>13}"
    )
    for row in rows:
        if row["framework"] == "pytorch":
            print(
                f"{'pytorch':<12}{'-':>10}{made['torch_build_s']:>9.1f}"
                f"{row['read_pt_s']:>11.1f}{'-':>11}{row['load_state_dict_s']:>10.1f}"
                f"{row['images_per_s']:>8.2f}{1.0:>9.2f}{'-':>13}"
            )
            continue
        read_pt = "-" if row["read_pt_s"] is None else f"{row['read_pt_s']:.1f}"
        print(
            f"{row['framework']:<12}"
            f"{str(row['parameters_keras'] == made['parameters_torch']):>10}"
            f"{row['build_s']:>9.1f}{read_pt:>11}{row['read_safetensors_s']:>11.1f}"
            f"{row['convert_s']:>10.1f}{row['images_per_s']:>8.2f}"
            f"{row['images_per_s'] / torch_speed:>9.2f}"
            f"{row['max_relative_logit_difference']:>13.1e}"
        )


if __name__ == "__main__":
    main()
