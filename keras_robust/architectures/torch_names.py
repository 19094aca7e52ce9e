"""Which PyTorch module each layer of our architectures is.

Each architecture names its layers so that one rule maps a Keras layer name
to the module path of the PyTorch class RobustBench ships (its
`model_zoo/architectures/*.py`), e.g. WideResNet's `block2_3_conv1` is
`block2.layer.2.conv1`. A family is recognised by a layer only it has.
"""

import re

# (family, a layer name only that family has, rules, unused PyTorch prefixes)
# Rules are (regex on the Keras layer name, function of the match -> module).


def _sub(pattern, function):
    return re.compile(pattern), function


def _minus_one(value):
    return str(int(value) - 1)


FAMILIES = (
    (
        # DeepMind's WideResNet (dm_wide_resnet.py, `DMWideResNet`).
        "DMWideResNet",
        "init_conv",
        (
            _sub(r"^(init_conv|batchnorm|logits)$", lambda m: m[1]),
            _sub(
                r"^layer_(\d+)_block_(\d+)_(\w+)$",
                lambda m: f"layer.{m[1]}.block.{m[2]}.{m[3]}",
            ),
        ),
        (),
    ),
    (
        # DeepMind's PreActResNet (dm_wide_resnet.py, `DMPreActResNet`).
        "DMPreActResNet",
        "conv_2d",
        (
            _sub(r"^(conv_2d|batchnorm|logits)$", lambda m: m[1]),
            _sub(r"^layer_(\d+)_(\d+)_(\w+)$", lambda m: f"layer_{m[1]}.{m[2]}.{m[3]}"),
        ),
        (),
    ),
    (
        # kuangliu's ResNet-18 (resnet.py, `ResNet(BasicBlock, [2, 2, 2, 2])`).
        "ResNet18",
        "stem_bn",
        (
            _sub(r"^stem_conv$", lambda m: "conv1"),
            _sub(r"^stem_bn$", lambda m: "bn1"),
            _sub(r"^logits$", lambda m: "linear"),
            _sub(
                r"^block(\d)_(\d+)_shortcut$",
                lambda m: f"layer{m[1]}.{_minus_one(m[2])}.shortcut.0",
            ),
            _sub(
                r"^block(\d)_(\d+)_shortcut_bn$",
                lambda m: f"layer{m[1]}.{_minus_one(m[2])}.shortcut.1",
            ),
            _sub(
                r"^block(\d)_(\d+)_(conv1|bn1|conv2|bn2)$",
                lambda m: f"layer{m[1]}.{_minus_one(m[2])}.{m[3]}",
            ),
        ),
        (),
    ),
    (
        # PreAct ResNet-18 (resnet.py, `PreActResNet`; robust_overfitting).
        "PreActResNet18",
        "block4_1_bn1",
        (
            _sub(r"^stem_conv$", lambda m: "conv1"),
            _sub(r"^final_bn$", lambda m: "bn"),
            _sub(r"^logits$", lambda m: "linear"),
            _sub(
                r"^block(\d)_(\d+)_shortcut$",
                lambda m: f"layer{m[1]}.{_minus_one(m[2])}.shortcut.0",
            ),
            _sub(
                r"^block(\d)_(\d+)_(conv1|bn1|conv2|bn2)$",
                lambda m: f"layer{m[1]}.{_minus_one(m[2])}.{m[3]}",
            ),
        ),
        (),
    ),
    (
        # The TRADES WideResNet (wide_resnet.py, `WideResNet`). Its
        # `sub_block1`, registered by many RobustBench entries
        # (`sub_block1=True`), is never used by `forward`.
        "WideResNet",
        "stem_conv",
        (
            _sub(r"^stem_conv$", lambda m: "conv1"),
            _sub(r"^final_bn$", lambda m: "bn1"),
            _sub(r"^logits$", lambda m: "fc"),
            _sub(
                r"^block(\d)_(\d+)_shortcut$",
                lambda m: f"block{m[1]}.layer.{_minus_one(m[2])}.convShortcut",
            ),
            _sub(
                r"^block(\d)_(\d+)_(conv1|bn1|conv2|bn2)$",
                lambda m: f"block{m[1]}.layer.{_minus_one(m[2])}.{m[3]}",
            ),
        ),
        ("sub_block1.",),
    ),
)


def family_of(layer_names):
    """(family name, rules, unused prefixes) for a model's layer names, or None."""
    names = set(layer_names)
    for family, marker, rules, unused in FAMILIES:
        if marker in names:
            return family, rules, unused
    return None


def torch_module_name(layer_name, rules):
    """The PyTorch module path of a Keras layer, or None if no rule matches."""
    for pattern, function in rules:
        match = pattern.match(layer_name)
        if match:
            return function(match)
    return None
