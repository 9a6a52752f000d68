"""FOCUS generalization: accuracy in common and uncommon settings, with intervals.

A Hugging Face `evaluate` module for FOCUS (Kattakinda & Feizi, ICML 2022). It imports nothing from
the FOCUS toolkit so that it can be published as an evaluate Space on its own. The arithmetic lives in
focus_metrics.py beside it (numpy only), which the toolkit's harness and leaderboard call directly,
so there is one implementation.
"""

import datasets
import evaluate

from .focus_metrics import check_input_types, compute_focus_metrics

_CITATION = """\
@InProceedings{pmlr-v162-kattakinda22a,
  title = {{FOCUS}: Familiar Objects in Common and Uncommon Settings},
  author = {Kattakinda, Priyatham and Feizi, Soheil},
  booktitle = {Proceedings of the 39th International Conference on Machine Learning},
  pages = {10825--10847}, year = {2022}, volume = {162},
  series = {Proceedings of Machine Learning Research}, publisher = {PMLR}
}
"""

_DESCRIPTION = """\
FOCUS (Familiar Objects in Common and Uncommon Settings) holds photos of the ten CIFAR-10 classes
annotated with time of day, weather and locations; each (class, setting) pair is common or uncommon.
This metric measures how a classifier's accuracy drops in uncommon settings:

- accuracy per partition: P0 (no uncommon attribute), P1, P2, P3 (one, two, three uncommon
  attributes) and P(t), P(w), P(l), P(t,w), P(w,l), P(t,l), P(t,w,l) (which attributes are uncommon),
  with Wilson intervals (Table 4, Figure 3 of the paper);
- two overall gaps: gap_overall = A(P0) - A(P1 u P2 u P3), every image with an uncommon attribute
  (the paper's definition in the text), and gap_overall_paper = A(P0) - A(P1 u P2), what the paper's
  headline numbers measure (its footnote 2 leaves P3 out: too few images; Wide-ResNet50-2 24.2%,
  EfficientNet-b7 21.00%); and the generalization gaps G_t, G_w, G_l of Equation 1 (Table 3), all
  with bootstrap percentile intervals;
- per class: accuracy in P0..P3 with intervals (Figure 2) and the class's own gaps;
- class x value tables of correct and total counts, accuracy and the uncommon mask for time,
  weather and locations (the heatmaps of Appendix E).

G_a is the accuracy where attribute a has a common value minus the accuracy where it has an
uncommon value, "none" values left out. With gap_unit="occurrence" (the default, what Table 3
reports) an image with several locations counts once per location, as in the heatmaps; with
gap_unit="image" every image counts once: it is uncommon in locations if any of its locations is
uncommon, and common if it has a location and none of them is uncommon.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted FOCUS class id per image, or -1 when the model's
        prediction maps to none of the ten classes (it then counts as wrong).
    references (`list` of `int`): true FOCUS class id per image (0 truck ... 9 bird).
    time (`list` of `int`): time id per image (0 day, 1 night, 2 none).
    weather (`list` of `int`): weather id per image (0 cloudy ... 5 sunny, 6 none).
    locations (`list` of `list` of `int`): the image's location ids (0 forest ... 7 water, 8 none).
    uncommon_time (`list` of `bool`): whether the image's time is uncommon for its class.
    uncommon_weather (`list` of `bool`): whether the image's weather is uncommon for its class.
    uncommon_locations (`list` of `list` of `int`): the image's locations that are uncommon for its
        class (a subset of `locations`, empty when none is).
    gap_unit (`str`, default "occurrence"): how G_l counts an image with several locations:
        "occurrence" once per location (the paper's heatmaps and Table 3), "image" once. G_t and G_w
        (one value per image) are the same either way.
    confidence (`float`, default 0.95): coverage of every interval.
    n_bootstrap (`int`, default 1000): bootstrap replicates for the gap intervals; 0 turns them off.
    seed (`int`, optional): seed of the bootstrap, for reproducible intervals.

Returns:
    accuracy (`float` or `None`), n (`int`), correct (`int`): over all images.
    partitions (`dict`): for P0, P1, P2, P3, P(t), P(w), P(l), P(t,w), P(w,l), P(t,l), P(t,w,l):
        accuracy, n, correct and the Wilson interval ci_low, ci_high.
    gap_overall, gap_overall_paper, G_t, G_w, G_l (`dict`): value, ci_low, ci_high (bootstrap
        percentile interval). gap_overall is A(P0) - A(P1 u P2 u P3), gap_overall_paper
        A(P0) - A(P1 u P2) as the paper's headline numbers. Gaps lie in [-1, 1]; a gap is None
        when one of its groups is empty (e.g. frog's G_t: no time is uncommon for frog).
    per_class (`dict`): per class name, P0..P3 as in partitions, and the class's G_t, G_w, G_l.
    heatmaps (`dict`): for time, weather and locations: classes, values ("none" left out), and
        class x value lists correct, total, accuracy, uncommon, plus the per-class gap.
    config (`dict`): gap_unit, confidence, n_bootstrap, seed.
    Accuracies and interval bounds lie in [0, 1]; anything undefined (no image) is None.

Examples:
    Two truck images, one by day and one by night, both in the street; the night one is missed.

    >>> import evaluate
    >>> focus = evaluate.load("metrics/focus_generalization")
    >>> results = focus.compute(
    ...     predictions=[0, 1],
    ...     references=[0, 0],
    ...     time=[0, 1],
    ...     weather=[5, 5],
    ...     locations=[[5], [5]],
    ...     uncommon_time=[False, True],
    ...     uncommon_weather=[False, False],
    ...     uncommon_locations=[[], []],
    ...     n_bootstrap=0,
    ... )
    >>> results["accuracy"], results["partitions"]["P0"]["accuracy"], results["partitions"]["P(t)"]["n"]
    (0.5, 1.0, 1)
    >>> results["G_t"]
    {'value': 1.0, 'ci_low': None, 'ci_high': None}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FocusGeneralization(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "time": datasets.Value("int64"),
                    "weather": datasets.Value("int64"),
                    "locations": datasets.Sequence(datasets.Value("int64")),
                    "uncommon_time": datasets.Value("bool"),
                    "uncommon_weather": datasets.Value("bool"),
                    "uncommon_locations": datasets.Sequence(datasets.Value("int64")),
                }
            ),
            reference_urls=["https://proceedings.mlr.press/v162/kattakinda22a.html"],
        )

    # evaluate encodes inputs into its declared types before _compute sees them, silently: 2.7 becomes
    # the id 2 and the flag 2 becomes True. Checking the raw values first keeps its compute and
    # add_batch as strict as compute_focus_metrics.
    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of images' predictions and references (and their attributes), type-checked first."""
        check_input_types({"predictions": predictions, "references": references, **kwargs})
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one image's prediction and reference (and its attributes), type-checked first."""
        row = {"predictions": prediction, "references": reference, **kwargs}
        check_input_types({name: None if value is None else [value] for name, value in row.items()})
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self,
        predictions,
        references,
        time,
        weather,
        locations,
        uncommon_time,
        uncommon_weather,
        uncommon_locations,
        gap_unit="occurrence",
        confidence=0.95,
        n_bootstrap=1000,
        seed=None,
    ):
        return compute_focus_metrics(
            predictions,
            references,
            time,
            weather,
            locations,
            uncommon_time,
            uncommon_weather,
            uncommon_locations,
            gap_unit=gap_unit,
            confidence=confidence,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )


