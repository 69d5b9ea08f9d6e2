"""A fast Prometheus text rendering of the state collector's metric families.

prometheus-client's ``generate_latest`` validates and escapes every label
name of every sample (about 6 µs a sample here): with 1,000 partitions and a
group's lag on each, some 6,000 samples took 30-40 ms on the loop. The state
collector's label names are fixed and valid, so only label values need
escaping (group ids are free text); this renders the same text format at a
fraction of the cost. The hot-path instruments still go through
``generate_latest``: they are few.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

__all__ = ["Rows", "label_text", "render"]

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


class Rows(Metric):
    """A family of many labelled series, kept as pre-rendered label text and a value.

    ``render`` writes them without building a ``Sample`` each (the cost that
    dominates at thousands of series); ``samples`` still gives them to
    prometheus-client and the tests.
    """

    def __init__(self, name: str, documentation: str, typ: str, labelnames: tuple[str, ...]):
        super().__init__(name, documentation, typ)
        self.labelnames = labelnames
        self.rows: list[tuple[str, tuple[str, ...], float]] = []

    def add(self, text: str, labels: tuple[str, ...], value: float) -> None:
        """``text``: ``label_text(self.labelnames, labels)``, usually cached by the caller."""
        self.rows.append((text, labels, value))

    @property  # type: ignore[override]
    def samples(self) -> list[Sample]:
        names = self.labelnames
        return [
            Sample(self.name, dict(zip(names, labels, strict=True)), v)
            for _, labels, v in self.rows
        ]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        pass  # Metric.__init__ sets []: the rows are the samples


def label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in zip(names, values, strict=True))


def render(families: Iterable[Metric]) -> bytes:
    lines: list[str] = []
    append = lines.append
    for family in families:
        name = family.name + "_total" if family.type == "counter" else family.name
        help_text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        append(f"# HELP {name} {help_text}")
        append(f"# TYPE {name} {family.type}")
        if isinstance(family, Rows):
            for text, _, value in family.rows:
                append(f"{name}{{{text}}} {value if type(value) is int else _number(value)}")
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels:
                inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                append(f"{sample.name}{{{inner}}} {_number(sample.value)}")
            else:
                append(f"{sample.name} {_number(sample.value)}")
    lines.append("")
    return "\n".join(lines).encode("utf-8")


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.translate(_ESCAPES)
    return value


def _number(value: float) -> str:
    if type(value) is int:
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))
