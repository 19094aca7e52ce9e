"""Regenerate `entries.py` from RobustBench's sources (a maintainer's tool).

    python -m keras_robust.zoo._build_entries /path/to/robustbench-repo > keras_robust/zoo/entries.py

Reads, without importing anything from them:
- `robustbench/model_zoo/{cifar10,cifar100}.py`: each entry's name, its
  PyTorch architecture (the `'model'` expression) and its Google Drive id;
- `model_info/{dataset}/{threat}/{name}.json`: the leaderboard's published
  clean and AutoAttack accuracy, paper, venue, epsilon, extra data.

Only entries whose architecture we have are written: DeepMind's
`DMWideResNet` / `DMPreActResNet`, the TRADES `WideResNet`, kuangliu's
`ResNet18` and the two PreAct ResNet-18 variants, with the standardisation of
the wrapper classes (`mu`/`sigma` buffers, `2x - 1`). Per-image
standardisation (Ding2020MMA), ensembles and other architectures are skipped.
"""

import ast
import json
import pathlib
import pprint
import subprocess
import sys

DATASETS = {"cifar10": "cifar10.py", "cifar100": "cifar100.py"}
THREATS = {"Linf": "linf", "L2": "l2"}
CONSTANTS = {
    "CIFAR10_MEAN": (0.4914, 0.4822, 0.4465),
    "CIFAR10_STD": (0.2471, 0.2435, 0.2616),
    "CIFAR100_MEAN": (0.5071, 0.4865, 0.4409),
    "CIFAR100_STD": (0.2673, 0.2564, 0.2762),
}
# Entries whose checkpoint nests the state_dict under another key
# (robustbench/utils.py, load_model: `checkpoint['last']`).
CHECKPOINT_KEYS = {"Andriushchenko2020Understanding": "last"}


def _value(node):
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_value(node.value)}.{node.attr}"
    return ast.literal_eval(node)


def _call_arguments(call, positional_names):
    arguments = dict(zip(positional_names, (_value(a) for a in call.args)))
    arguments.update({k.arg: _value(k.value) for k in call.keywords})
    return arguments


def _wide_resnet(arguments, normalization):
    arguments = {"depth": 28, "num_classes": 10, "widen_factor": 10, **arguments}
    return {
        "architecture": "WideResNet",
        "arguments": {"depth": arguments["depth"], "width": arguments["widen_factor"]},
        "num_classes": arguments["num_classes"],
        "normalization": normalization,
    }


def _describe_call(call, normalization=None):
    function = _value(call.func)
    if function in ("DMWideResNet", "DMPreActResNet"):
        arguments = _call_arguments(call, ())
        activation = {"Swish": "swish", "nn.SiLU": "silu"}[arguments["activation_fn"]]
        if function == "DMWideResNet":
            ours = {"depth": arguments["depth"], "width": arguments["width"]}
        else:
            ours = {"depth": arguments.get("depth", 18)}
        ours["activation"] = activation
        return {
            "architecture": function,
            "arguments": ours,
            "num_classes": arguments.get("num_classes", 10),
            "normalization": (arguments["mean"], arguments["std"]),
        }
    if function == "WideResNet":
        names = ("depth", "num_classes", "widen_factor", "sub_block1", "dropRate")
        return _wide_resnet(_call_arguments(call, names), normalization)
    if function == "ResNet18" or (
        function == "ResNet"
        and _value(call.args[0]) == "BasicBlock"
        and _value(call.args[1]) == [2, 2, 2, 2]
    ):
        arguments = _call_arguments(call, ("block", "num_blocks", "num_classes"))
        return {
            "architecture": "ResNet18",
            "arguments": {},
            "num_classes": arguments.get("num_classes", 10),
            "normalization": normalization,
        }
    if function == "PreActResNet" and _value(call.args[1]) == [2, 2, 2, 2]:
        arguments = _call_arguments(
            call, ("block", "num_blocks", "num_classes", "bn_before_fc", "out_shortcut")
        )
        block = arguments["block"]
        bn_before_fc = arguments.get("bn_before_fc", False)
        out_shortcut = arguments.get("out_shortcut", False)
        ours = {}
        if block == "PreActBlock" and not out_shortcut:
            ours["shortcut"] = "input"
        elif block not in ("PreActBlock", "PreActBlockV2"):
            return None
        if not bn_before_fc:
            ours["final_batch_norm"] = False
        return {
            "architecture": "PreActResNet18",
            "arguments": ours,
            "num_classes": arguments.get("num_classes", 10),
            "normalization": normalization,
        }
    return None


def _wrapper_classes(tree, source):
    """{class name: (super().__init__ call as a Call on the base, normalization)}."""
    classes = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or not node.bases:
            continue
        base = _value(node.bases[0])
        init = next(
            (
                n
                for n in node.body
                if isinstance(n, ast.FunctionDef) and n.name == "__init__"
            ),
            None,
        )
        forward = next(
            (
                n
                for n in node.body
                if isinstance(n, ast.FunctionDef) and n.name == "forward"
            ),
            None,
        )
        if init is None or forward is None:
            continue
        defaults = dict(
            zip(
                [a.arg for a in init.args.args][
                    -len(init.args.defaults) or len(init.args.args) :
                ],
                (ast.literal_eval(d) for d in init.args.defaults),
            )
        )
        super_call = None
        buffers = {}
        for sub in ast.walk(init):
            if (
                isinstance(sub, ast.Call)
                and isinstance(sub.func, ast.Attribute)
                and sub.func.attr == "__init__"
            ):
                super_call = sub
            if (
                isinstance(sub, ast.Call)
                and isinstance(sub.func, ast.Attribute)
                and sub.func.attr == "register_buffer"
            ):
                name = ast.literal_eval(sub.args[0])
                # torch.tensor([...]).view(1, 3, 1, 1): the list literal.
                literal = sub.args[1].func.value.args[0]
                if isinstance(literal, ast.BinOp):  # [0.5] * 3
                    values = ast.literal_eval(literal.left) * ast.literal_eval(
                        literal.right
                    )
                else:
                    values = ast.literal_eval(literal)
                if isinstance(values, list) and len(values) == 1:
                    values = values * 3
                buffers[name] = tuple(values)
        forward_source = ast.get_source_segment(source, forward)
        if "(x - self.mu) / self.sigma" in forward_source:
            normalization = (buffers["mu"], buffers["sigma"])
        elif "2. * x - 1." in forward_source:
            normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        else:
            continue  # another input transform (per-image, ensembles, ...)
        if super_call is None:
            continue
        # Resolve the super().__init__ arguments with the subclass defaults.
        resolved = ast.Call(
            func=ast.Name(id=base),
            args=[_resolve(a, defaults) for a in super_call.args],
            keywords=[
                ast.keyword(arg=k.arg, value=_resolve(k.value, defaults))
                for k in super_call.keywords
            ],
        )
        classes[node.name] = (resolved, normalization)
    return classes


def _resolve(node, defaults):
    if isinstance(node, ast.Name) and node.id in defaults:
        return ast.Constant(defaults[node.id])
    return node


def build(repo):
    repo = pathlib.Path(repo)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    entries = []
    for dataset, filename in DATASETS.items():
        path = repo / "robustbench" / "model_zoo" / filename
        source = path.read_text()
        tree = ast.parse(source)
        wrappers = _wrapper_classes(tree, source)
        tables = {}
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in THREATS.values()
            ):
                tables[node.targets[0].id] = node.value
        for threat, variable in THREATS.items():
            table = tables.get(variable)
            if table is None:
                continue
            items = table.args[0].elts
            for item in items:
                name = ast.literal_eval(item.elts[0])
                spec = item.elts[1]
                fields = {
                    ast.literal_eval(k): v for k, v in zip(spec.keys, spec.values)
                }
                model = fields["model"]
                if isinstance(model, ast.Lambda) and isinstance(model.body, ast.Call):
                    described = _describe_call(model.body)
                elif isinstance(model, ast.Name) and model.id in wrappers:
                    call, normalization = wrappers[model.id]
                    described = _describe_call(call, normalization)
                elif isinstance(model, ast.Name) and model.id == "ResNet18":
                    described = _describe_call(
                        ast.Call(func=model, args=[], keywords=[])
                    )
                else:
                    described = None
                if described is None:
                    continue
                gdrive = ast.literal_eval(fields["gdrive_id"])
                if not isinstance(gdrive, str):
                    continue
                info_path = f"model_info/{dataset}/{threat}/{name}.json"
                info_file = repo / info_path
                if not info_file.exists():
                    continue
                info = json.loads(info_file.read_text())

                def accuracy(key, info=info):
                    value = info.get(key, "")
                    return float(value) if value not in ("", None) else None

                entries.append(
                    {
                        "name": name,
                        "dataset": dataset,
                        "threat_model": threat,
                        **described,
                        "checkpoint_key": CHECKPOINT_KEYS.get(name),
                        "clean_accuracy": accuracy("clean_acc"),
                        "autoattack_accuracy": accuracy("autoattack_acc"),
                        "epsilon": info.get("eps"),
                        "additional_data": bool(info.get("additional_data", False)),
                        "paper": info.get("name"),
                        "link": info.get("link"),
                        "venue": info.get("venue"),
                        "leaderboard_architecture": info.get("architecture"),
                        "gdrive_id": gdrive,
                        "source": (
                            f"robustbench/model_zoo/{filename}:{item.lineno} and "
                            f"{info_path} of github.com/RobustBench/robustbench "
                            f"at {commit}"
                        ),
                    }
                )
    return commit, entries


def main(argv):
    commit, entries = build(argv[1])
    print('"""RobustBench entries whose architectures keras_robust has (generated).')
    print()
    print("Written by `python -m keras_robust.zoo._build_entries REPO` from")
    print(f"github.com/RobustBench/robustbench at {commit}: the architectures of")
    print("robustbench/model_zoo/cifar10.py and cifar100.py (as in the robustbench")
    print("1.1.1 package), the published accuracies of model_info/*/*/*.json.")
    print("Do not edit by hand.")
    print('"""')
    print()
    print(f"ROBUSTBENCH_COMMIT = {commit!r}")
    print()
    print("ENTRIES = " + pprint.pformat(tuple(entries), width=88, sort_dicts=False))


if __name__ == "__main__":
    main(sys.argv)
