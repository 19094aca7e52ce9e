"""Reading and writing PyTorch checkpoints: the only torch-dependent I/O.

`kr.architectures.load_torch_weights` / `save_torch_weights` call these for
`.pt` / `.pth` files (pickles that only PyTorch can read) and to turn torch
tensors into NumPy arrays. torch is imported lazily, inside the functions, so
keras_robust imports (and reads `.safetensors` files) without it.
"""

import numpy as np

TORCH_MISSING = (
    "Reading or writing a PyTorch .pt/.pth checkpoint needs PyTorch: install "
    "the `torch` extra (`pip install keras-robust[torch]`, or the CPU build "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu`), "
    "or convert the checkpoint to .safetensors, which loads without torch."
)


def _torch():
    try:
        import torch
    except ImportError as error:
        raise ImportError(TORCH_MISSING) from error
    return torch


def is_torch_tensor(value):
    """Whether `value` is a torch.Tensor, without importing torch."""
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach")


def tensor_to_numpy(value):
    """A NumPy copy of a torch tensor (any device; bfloat16 widened to float32)."""
    torch = _torch()
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:
        value = value.float()
    return value.numpy().copy()


def load_checkpoint(path, weights_only=True):
    """`torch.load(path, map_location="cpu")`.

    Args:
        path: a file written by `torch.save`.
        weights_only: PyTorch's safe unpickler (tensors, dicts, lists and
            numbers only). False runs arbitrary pickled code: only for files
            you trust.

    Returns:
        The unpickled object (a state_dict or a dict holding one).

    Raises:
        ImportError: torch is not installed (the message names the extra).
        ValueError: the file is not a readable PyTorch checkpoint.
    """
    torch = _torch()
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as error:  # noqa: BLE001 - any unpickling failure
        hint = ""
        if weights_only and "weights_only" in str(error):
            hint = (
                " The file holds more than tensors; if you trust it, pass "
                "weights_only=False."
            )
        raise ValueError(
            f"Could not read the PyTorch checkpoint {str(path)!r} "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})."
            f"{hint} Is the file complete (a truncated download gives this)?"
        ) from error


def save_checkpoint(arrays, path):
    """`torch.save` a name -> NumPy array mapping as a state_dict of tensors."""
    torch = _torch()
    state_dict = {
        name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()
    }
    torch.save(state_dict, path)
