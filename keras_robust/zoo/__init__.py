"""RobustBench's robust CIFAR models in Keras: `kr.zoo`.

```python
kr.zoo.list_models("cifar10", "Linf")                 # names we can build
kr.zoo.info("Gowal2020Uncovering_70_16")              # architecture, published accuracies
net = kr.zoo.load("Gowal2020Uncovering_70_16", checkpoint="Gowal2020Uncovering_70_16.pt")
```

The entries, their PyTorch architectures and their published clean and
AutoAttack accuracies come from RobustBench (`entries.py` says from which
files and commit); checkpoints are RobustBench's PyTorch files, converted by
`kr.architectures.load_torch_weights`.
"""

from keras_robust.zoo.loading import build
from keras_robust.zoo.loading import load
from keras_robust.zoo.registry import ZooEntry
from keras_robust.zoo.registry import info
from keras_robust.zoo.registry import list_models

__all__ = ["ZooEntry", "build", "info", "list_models", "load"]
