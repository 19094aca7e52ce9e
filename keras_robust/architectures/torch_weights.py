"""PyTorch state_dicts in and out of our architectures.

Layouts: a PyTorch conv weight is (out, in, kh, kw) and Keras' kernel
(kh, kw, in, out); a Linear weight is (out, in) and Keras' Dense kernel
(in, out). BatchNorm `weight`, `bias`, `running_mean`, `running_var` are
Keras' gamma, beta, moving_mean, moving_variance; its `num_batches_tracked`
counter has no Keras counterpart (it only matters for PyTorch's
`momentum=None` cumulative average) and is written as 0 on export.
"""

import os
import struct
from collections.abc import Mapping

import keras
import numpy as np

from keras_robust.architectures import torch_names
from keras_robust.backend import torch_io

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")
# Where RobustBench checkpoints nest their state_dict.
NESTING_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
# Prefixes of wrapped modules: DataParallel's `module.`, and `model.` of
# checkpoints saved from a wrapper (RobustBench strips both, utils.py).
WRAPPER_PREFIXES = ("module.", "model.")
# Standardisation buffers of RobustBench's wrapper classes (`mu`, `sigma`) and
# others (`mean`, `std`): not weights here (the Normalization layer holds
# constants), so they are checked against the model's instead of loaded.
NORMALIZATION_KEYS = {
    "mu": "mean",
    "sigma": "std",
    "mean": "mean",
    "std": "std",
    "normalize.mean": "mean",
    "normalize.std": "std",
}
SHOWN = 12


class TorchWeightsReport(tuple):
    """(loaded, missing, unexpected): what `load_torch_weights` did.

    `loaded` counts the PyTorch tensors copied into Keras variables;
    `missing` are expected PyTorch names absent from the checkpoint;
    `unexpected` are checkpoint tensors no layer took (both empty after a
    strict load).
    """

    def __new__(cls, loaded, missing, unexpected):
        return super().__new__(cls, (loaded, tuple(missing), tuple(unexpected)))

    loaded = property(lambda self: self[0])
    missing = property(lambda self: self[1])
    unexpected = property(lambda self: self[2])

    def __repr__(self):
        return (
            f"TorchWeightsReport(loaded={self.loaded}, missing={list(self.missing)}, "
            f"unexpected={list(self.unexpected)})"
        )


def load_torch_weights(
    model, source, strict=True, key=None, mapping=None, weights_only=True
):
    """Copy a PyTorch checkpoint into a keras_robust architecture.

    Every tensor of the PyTorch class goes to the Keras variable of the same
    layer: conv kernels (transposed to Keras' layout), Dense kernel and bias,
    BatchNorm gamma/beta/moving mean/moving variance. Standardisation
    buffers (`mu`/`sigma`, `mean`/`std`) must equal the model's own
    `normalization` (an error otherwise: the model would see other inputs).
    Nothing is assigned unless every check passes, so a failed load never
    leaves a half-converted model.

    Args:
        model: a model built by `kr.architectures` (`WideResNet`,
            `PreActResNet18`, `ResNet18`, `DMWideResNet`, `DMPreActResNet`),
            or a `kr.models.RobustModel` wrapping one; any other functional
            model with `mapping`.
        source: a state_dict (a mapping of names to NumPy arrays or torch
            tensors), or a path to a `.pt` / `.pth` checkpoint (needs torch)
            or a `.safetensors` file (read with `safetensors`' NumPy API,
            without torch). A state_dict nested under `state_dict`,
            `model_state_dict`, `model`, `net` or `module` is found, and
            `module.` / `model.` prefixes are removed.
        strict: True raises if the checkpoint lacks a tensor the model needs
            or holds one it does not use, listing them. False loads what
            matches and reports the rest. Shape mismatches always raise.
        key: the entry of a checkpoint dict that holds the state_dict, when
            it is none of the usual ones (e.g. "last").
        mapping: for a model whose layers are not named like ours: a dict or
            a function from a Keras layer name to a PyTorch module path
            (None for a layer without PyTorch weights).
        weights_only: passed to `torch.load` (its safe unpickler); False
            runs pickled code, for trusted files only.

    Returns:
        A `TorchWeightsReport` (loaded, missing, unexpected).

    Raises:
        ValueError: unreadable file; a checkpoint that does not fit (the
            message lists the missing and unexpected names and the tensors
            whose shapes differ, with both shapes); normalization buffers
            that differ from the model's.
        ImportError: a `.pt` file without torch installed.

    Example:

    ```python
    net = kr.architectures.DMWideResNet(depth=28, width=10)
    kr.architectures.load_torch_weights(net, "Rebuffi2021Fixing_28_10_cutmix_ddpm.pt")
    ```
    """
    model = _classifier(model)
    state = read_state_dict(source, key=key, weights_only=weights_only)
    targets, unused, family = _targets(model, mapping)
    expected = {}
    for name, (variable, to_keras) in targets.items():
        expected[name] = (variable, to_keras)
    consumed = set()
    mismatched = []
    assignments = []
    for name, (variable, to_keras) in expected.items():
        if name not in state:
            continue
        consumed.add(name)
        value = state[name]
        torch_shape = _torch_shape(tuple(variable.shape), to_keras)
        if tuple(value.shape) != torch_shape:
            mismatched.append(
                f"{name}: checkpoint {tuple(value.shape)}, model expects {torch_shape}"
            )
            continue
        assignments.append((variable, to_keras(value)))
    missing = [name for name in expected if name not in state]
    normalization_errors = _check_normalization(model, state, consumed)
    unexpected = []
    for name in state:
        if name in consumed or name.startswith(unused):
            continue
        if name.endswith(".num_batches_tracked") and (
            name[: -len("num_batches_tracked")] + "running_mean" in expected
        ):
            consumed.add(name)
            continue
        unexpected.append(name)
    problems = []
    if mismatched:
        problems.append(_listing("tensors whose shapes do not fit", mismatched))
    if strict and missing:
        problems.append(_listing("missing from the checkpoint", missing))
    if strict and unexpected:
        problems.append(_listing("in the checkpoint but not in the model", unexpected))
    problems.extend(normalization_errors)
    if problems:
        what = f"a {family}" if family else "this model"
        hint = ""
        if len(missing) > len(expected) // 2:
            hint = (
                " Most names do not match: the checkpoint is probably for "
                "another architecture (or needs `mapping=`)."
            )
        raise ValueError(
            f"The checkpoint does not fit {what} {model.name!r} "
            f"({len(expected)} tensors expected, {len(state)} in the "
            "checkpoint):\n" + "\n".join(problems) + hint
        )
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    return TorchWeightsReport(len(assignments), missing, unexpected)


def save_torch_weights(model, path=None, mapping=None):
    """The PyTorch state_dict of a keras_robust architecture (and a file).

    The inverse of `load_torch_weights`: the names and layouts of the
    PyTorch class RobustBench ships for that architecture, so
    `torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in
    arrays.items()})` works, and loading the result back is exact.

    Args:
        model: a keras_robust architecture (or a `RobustModel` wrapping one).
        path: None, or a file to write: `.safetensors` (no torch needed) or
            `.pt` / `.pth` (`torch.save` of a dict of tensors; needs torch).
        mapping: as in `load_torch_weights`.

    Returns:
        A dict of PyTorch names to NumPy arrays in PyTorch's layout.

    Example:

    ```python
    arrays = kr.architectures.save_torch_weights(net, "wrn.safetensors")
    ```
    """
    model = _classifier(model)
    targets, _, _ = _targets(model, mapping)
    arrays = {}
    for name, (variable, to_keras) in targets.items():
        value = keras.ops.convert_to_numpy(variable.value)
        arrays[name] = np.ascontiguousarray(_to_torch_layout(value, to_keras))
        if name.endswith(".running_var"):
            counter = name[: -len("running_var")] + "num_batches_tracked"
            arrays[counter] = np.zeros((), dtype="int64")
    if path is not None:
        path = os.fspath(path)
        if path.endswith(".safetensors"):
            from safetensors.numpy import save_file

            save_file(arrays, path)
        elif path.endswith(TORCH_SUFFIXES):
            torch_io.save_checkpoint(arrays, path)
        else:
            raise ValueError(
                f"`path` must end in .safetensors, or {', '.join(TORCH_SUFFIXES)} "
                f"for torch.save, got {path!r}."
            )
    return arrays


def read_state_dict(source, key=None, weights_only=True):
    """A flat {name: NumPy array} from a state_dict, a nested dict or a file.

    Args:
        source: a mapping, or a path to a `.pt`/`.pth`/`.safetensors` file.
        key: the entry that holds the state_dict (None: found).
        weights_only: passed to `torch.load`.

    Returns:
        A dict of names (wrapper prefixes removed) to NumPy arrays.
    """
    if isinstance(source, (str, os.PathLike)):
        source = _read_file(os.fspath(source), weights_only)
    if not isinstance(source, Mapping):
        raise TypeError(
            "`source` must be a state_dict (a mapping of names to arrays or "
            "tensors) or a path to a .pt/.pth/.safetensors file, got "
            f"{type(source).__name__}."
        )
    if key is not None:
        if key not in source:
            raise ValueError(
                f"`key` {key!r} is not in the checkpoint; its entries are "
                f"{sorted(map(str, source))[:SHOWN]}."
            )
        source = source[key]
    source = _unnest(source)
    state = {}
    for name, value in source.items():
        if not isinstance(name, str):
            raise ValueError(f"state_dict names must be strings, got {name!r}.")
        array = _to_numpy(name, value)
        state[_strip_prefixes(name)] = array
    return state


def _read_file(path, weights_only):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file {path!r} does not exist.")
    if path.endswith(".safetensors") or _looks_like_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise ValueError(
                f"Could not read the .safetensors file {path!r} ({error}). "
                "Is the file complete (a truncated download gives this)?"
            ) from error
    return torch_io.load_checkpoint(path, weights_only=weights_only)


def _looks_like_safetensors(path):
    # An 8-byte little-endian header length, then the JSON header.
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and size < os.path.getsize(path)


def _unnest(source):
    """The innermost mapping whose values are arrays."""
    for _ in range(4):
        if all(_is_array(value) for value in source.values()):
            return source
        for name in NESTING_KEYS:
            if isinstance(source.get(name), Mapping):
                source = source[name]
                break
        else:
            others = [name for name, v in source.items() if not _is_array(v)]
            raise ValueError(
                "The checkpoint is a dict whose entries are not all tensors "
                f"(non-tensor entries: {others[:SHOWN]}) and none of "
                f"{list(NESTING_KEYS)} holds a state_dict; pass `key=` to say "
                "which entry does."
            )
    return source


def _is_array(value):
    return isinstance(value, np.ndarray) or torch_io.is_torch_tensor(value)


def _to_numpy(name, value):
    if torch_io.is_torch_tensor(value):
        return torch_io.tensor_to_numpy(value)
    if isinstance(value, np.ndarray):
        return value
    raise ValueError(f"state_dict entry {name!r} is not an array or tensor.")


def _strip_prefixes(name):
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                stripped = True
    return name


def _classifier(model):
    # A kr.models.RobustModel holds the network as `classifier`.
    inner = getattr(model, "classifier", None)
    if isinstance(inner, keras.Model):
        return inner
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model, got {type(model).__name__}.")
    return model


def _transpose(axes):
    def to_keras(value):
        return np.transpose(value, axes)

    to_keras.axes = axes
    return to_keras


def _identity(value):
    return value


_identity.axes = None
CONV = _transpose((2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)
DENSE = _transpose((1, 0))
BN_NAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _torch_shape(keras_shape, to_keras):
    if to_keras.axes is None:
        return keras_shape
    inverse = np.argsort(to_keras.axes)
    return tuple(keras_shape[axis] for axis in inverse)


def _to_torch_layout(value, to_keras):
    if to_keras.axes is None:
        return value
    return np.transpose(value, np.argsort(to_keras.axes))


def _targets(model, mapping):
    """{PyTorch name: (Keras variable, torch -> Keras layout)} of the model."""
    layers = [layer for layer in model.layers if layer.weights]
    family, unused = None, ()
    if mapping is None:
        found = torch_names.family_of(layer.name for layer in model.layers)
        if found is None:
            raise ValueError(
                f"`model` {model.name!r} is not one of kr.architectures' "
                "WideResNet, PreActResNet18, ResNet18, DMWideResNet or "
                "DMPreActResNet (none of their layer names is there); pass "
                "`mapping=` (Keras layer name -> PyTorch module path)."
            )
        family, rules, unused = found

        def module_of(layer_name):
            return torch_names.torch_module_name(layer_name, rules)

    elif isinstance(mapping, Mapping):
        module_of = mapping.get
    elif callable(mapping):
        module_of = mapping
    else:
        raise TypeError("`mapping` must be None, a dict or a function.")
    targets = {}
    unmapped = []
    for layer in layers:
        module = module_of(layer.name)
        if module is None:
            unmapped.append(layer.name)
            continue
        for variable_name, variable, to_keras in _layer_variables(layer):
            targets[f"{module}.{variable_name}"] = (variable, to_keras)
    if unmapped:
        raise ValueError(
            f"Layers with weights have no PyTorch counterpart: {unmapped[:SHOWN]} "
            "(a learnable activation, or layers added to the architecture); "
            "PyTorch checkpoints hold only the original network's tensors."
        )
    return targets, tuple(unused), family


def _layer_variables(layer):
    if isinstance(layer, keras.layers.Conv2D):
        yield "weight", layer.kernel, CONV
        if layer.use_bias:
            yield "bias", layer.bias, _identity
    elif isinstance(layer, keras.layers.Dense):
        yield "weight", layer.kernel, DENSE
        if layer.use_bias:
            yield "bias", layer.bias, _identity
    elif isinstance(layer, keras.layers.BatchNormalization):
        for keras_name, torch_name in BN_NAMES.items():
            variable = getattr(layer, keras_name, None)
            if variable is not None:
                yield torch_name, variable, _identity
    else:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) has weights but no "
            "known PyTorch layout (Conv2D, Dense and BatchNormalization have)."
        )


def _check_normalization(model, state, consumed):
    """Errors for standardisation buffers that differ from the model's."""
    present = {name: kind for name, kind in NORMALIZATION_KEYS.items() if name in state}
    if not present:
        return []
    layer = next(
        (lyr for lyr in model.layers if isinstance(lyr, keras.layers.Normalization)),
        None,
    )
    if layer is None:
        ours = None
    else:
        mean = np.ravel(keras.ops.convert_to_numpy(layer.mean))
        std = np.sqrt(np.ravel(keras.ops.convert_to_numpy(layer.variance)))
        ours = {"mean": mean, "std": std}
    errors = []
    for name, kind in present.items():
        consumed.add(name)
        theirs = np.ravel(state[name]).astype("float64")
        if ours is None:
            errors.append(
                f"the checkpoint standardises inputs ({name} = {theirs.tolist()}) "
                "but the model has no `normalization`; build it with that "
                "mean/std."
            )
        elif theirs.shape != ours[kind].shape or not np.allclose(
            theirs, ours[kind], rtol=1e-5, atol=1e-7
        ):
            errors.append(
                f"the checkpoint's {name} = {theirs.tolist()} differs from the "
                f"model's normalization {kind} = {ours[kind].tolist()}."
            )
    return errors


def _listing(title, names):
    shown = "\n".join(f"    {name}" for name in names[:SHOWN])
    more = f"\n    ... and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return f"  {len(names)} {title}:\n{shown}{more}"
