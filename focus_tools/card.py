"""The dataset card of a converted folder: YAML metadata for the Hub, and the statistics and
uncommon table computed from the data, rendered into dataset_card.md."""

from __future__ import annotations

from pathlib import Path

import datasets
import huggingface_hub
import pyarrow as pa

from focus_tools.schema import (
    CITATION,
    LICENSE,
    CLASS_NAMES,
    GAP_NAMES,
    LOCATION_NAMES,
    PARTITION_NAMES,
    TIME_NAMES,
    UNCOMMON_ATTRIBUTES,
    WEATHER_NAMES,
    load_uncommon_table,
    uncommon_masks,
)
from focus_tools.statistics import (closest_published_version, dataset_fingerprint, format_table1, format_table2,
                                    table1_counts, table2_counts)

CARD_TEMPLATE = Path(__file__).with_name("dataset_card.md")


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"


def render_card(info: datasets.DatasetInfo, annotations: pa.Table, uncommon_table: dict, report: dict,
                num_bytes: int) -> str:
    """The dataset card: YAML metadata for the Hub plus statistics computed from the data.

    The split sizes matter beyond display: `datasets` names a local folder's cache after its YAML
    metadata, so two conversions must not share it unless they hold the same data.
    """
    info.splits = datasets.SplitDict({"test": datasets.SplitInfo("test", num_bytes=num_bytes,
                                                                 num_examples=annotations.num_rows)})
    info.download_size = info.dataset_size = num_bytes
    card_data = huggingface_hub.DatasetCardData(
        pretty_name="FOCUS: Familiar Objects in Common and Uncommon Settings",
        license=LICENSE,
        task_categories=["image-classification"],
        size_categories=[_size_category(annotations.num_rows)],
        language=["en"],
        tags=["distribution-shift", "robustness", "cifar-10-classes"],
        configs=[{"config_name": "default", "data_files": [{"split": "test", "path": "data/test-*"}]}],
    )
    info.config_name = "default"
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    counts, sizes = table1_counts(annotations), table2_counts(annotations)
    card = huggingface_hub.DatasetCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        num_images=annotations.num_rows,
        fingerprint=dataset_fingerprint(annotations),
        version=closest_published_version(annotations),
        table1=format_table1(counts, uncommon_masks(uncommon_table)),
        table2=format_table2(sizes),
        uncommon_table=format_uncommon_table(uncommon_table),
        undefined_gaps=undefined_gaps(uncommon_table),
        uncommon_is_default=uncommon_table == load_uncommon_table(),
        report=report,
        citation=CITATION.strip(),
        class_names=CLASS_NAMES, time_names=TIME_NAMES, weather_names=WEATHER_NAMES,
        location_names=LOCATION_NAMES, partition_names=PARTITION_NAMES,
    )
    return str(card)


def undefined_gaps(uncommon_table: dict) -> str:
    """What the table leaves without a gap: the classes with no uncommon value of an attribute.

    >>> print(undefined_gaps(load_uncommon_table()))
    no time is uncommon for frog, so the per-class G_t of frog is undefined (the metric gives `None`), and
    the overall G_t pools the other classes
    """
    sentences = []
    for attribute in UNCOMMON_ATTRIBUTES:
        classes = [name for name in CLASS_NAMES if not uncommon_table[attribute][name]]
        if classes:
            listed = ", ".join(classes)
            gap = GAP_NAMES[attribute]
            sentences.append(f"no {attribute} is uncommon for {listed}, so the per-class {gap} of {listed} "
                             f"{'is' if len(classes) == 1 else 'are'} undefined (the metric gives `None`), and\n"
                             f"the overall {gap} pools the other classes")
    return "; ".join(sentences)


def format_uncommon_table(uncommon_table: dict) -> str:
    lines = ["| class | uncommon time | uncommon weather | uncommon locations |", "|---|---|---|---|"]
    for class_name in CLASS_NAMES:
        cells = [", ".join(uncommon_table[a][class_name]) or "—" for a in UNCOMMON_ATTRIBUTES]
        lines.append(f"| {class_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
