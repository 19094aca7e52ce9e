"""The result of `evaluate_robustness`: numbers, provenance and sanity flags."""

import dataclasses
import json


@dataclasses.dataclass
class Flag:
    """A warning sign about an evaluation (e.g. gradient masking).

    Attributes:
        name: a stable identifier, e.g. "zero_gradients".
        message: what was seen and what to do about it.
    """

    name: str
    message: str


@dataclasses.dataclass
class RobustnessReport:
    """Clean and robust accuracy of one evaluation, with sanity flags.

    Attributes:
        clean_accuracy: accuracy on the natural inputs.
        robust_accuracy: fraction correct under every attack.
        attack_accuracy: `{attack: robust accuracy after it}`, in cascade
            order, each attack run on the points earlier ones missed.
        num_examples: number of evaluated examples.
        epsilon, norm: the threat model.
        protocol: "autoattack-standard", "autoattack-fast" or "custom".
        seconds: wall time of the evaluation (flag checks included).
        backend: the Keras backend that ran it.
        model_name: the classifier's name.
        flags: `Flag`s raised by the sanity checks (empty: none fired).
        details: numbers behind the checks (gradient statistics, epsilon
            sweep, training-attack accuracy).
    """

    clean_accuracy: float
    robust_accuracy: float
    attack_accuracy: dict
    num_examples: int
    epsilon: float
    norm: str
    protocol: str
    seconds: float
    backend: str
    model_name: str = ""
    flags: list = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)

    def to_dict(self):
        """A RobustBench-like record (accuracies also as percentages)."""
        record = dataclasses.asdict(self)
        record["threat_model"] = {"linf": "Linf", "l2": "L2", "l1": "L1"}[self.norm]
        record["eps"] = self.epsilon
        record["clean_acc"] = round(100 * self.clean_accuracy, 2)
        key = (
            "autoattack_acc" if self.protocol.startswith("autoattack") else "robust_acc"
        )
        record[key] = round(100 * self.robust_accuracy, 2)
        return record

    @classmethod
    def from_dict(cls, record):
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in fields}
        values["flags"] = [Flag(**flag) for flag in values.get("flags", [])]
        return cls(**values)

    def to_json(self, path):
        """Writes the record to `path` (UTF-8 JSON)."""
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.to_dict(), file, indent=2)

    @classmethod
    def from_json(cls, path):
        with open(path, encoding="utf-8") as file:
            return cls.from_dict(json.load(file))

    def __str__(self):
        rows = [("clean", self.clean_accuracy)]
        rows += [(name, value) for name, value in self.attack_accuracy.items()]
        width = max(len(name) for name, _ in rows) + 2
        lines = [
            f"Robustness of {self.model_name or 'model'}: {self.norm} "
            f"epsilon {self.epsilon:.6g}, {self.protocol}, "
            f"{self.num_examples} examples, {self.seconds:.1f} s on {self.backend}",
            f"  {'accuracy after':{width}s} value",
        ]
        lines += [f"  {name:{width}s} {100 * value:6.2f}%" for name, value in rows]
        lines.append(f"  {'robust':{width}s} {100 * self.robust_accuracy:6.2f}%")
        if self.flags:
            lines.append("  FLAGS (the robust accuracy may be overestimated):")
            lines += [f"  - {flag.name}: {flag.message}" for flag in self.flags]
        else:
            lines.append("  no sanity flag raised")
        return "\n".join(lines)
