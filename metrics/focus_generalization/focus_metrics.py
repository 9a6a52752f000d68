"""The FOCUS generalization metric's arithmetic: pure numpy, no evaluate or datasets import.

The evaluate module focus_generalization.py (beside this file) wraps these functions; the FOCUS
toolkit's harness and leaderboard call them directly, without paying for importing evaluate (which
imports transformers' pipelines when transformers is installed: seconds). Inputs and outputs are
documented in focus_generalization.py's _KWARGS_DESCRIPTION and in the metric card (README.md).
"""

import itertools
import numbers
import statistics
import typing

import numpy as np

# A copy of the label lists of focus_dataset.py, the toolkit's source of truth, kept here because
# the metric has to stand alone as an evaluate Space; tests/test_metric.py checks that they agree.
CLASS_NAMES = ["truck", "car", "plane", "ship", "cat", "dog", "horse", "deer", "frog", "bird"]
TIME_NAMES = ["day", "night", "none"]
WEATHER_NAMES = ["cloudy", "foggy", "partly cloudy", "raining", "snowing", "sunny", "none"]
LOCATION_NAMES = ["forest", "grass", "indoors", "rocks", "sand", "street", "snow", "water", "none"]
ATTRIBUTE_NAMES = {"time": TIME_NAMES, "weather": WEATHER_NAMES, "locations": LOCATION_NAMES}
# Partitions (Section 3): P^A holds the images whose uncommon attributes are exactly A, given as which of
# (time, weather, locations) are uncommon.
PARTITIONS = {
    "P0": (False, False, False),
    "P(t)": (True, False, False),
    "P(w)": (False, True, False),
    "P(l)": (False, False, True),
    "P(t,w)": (True, True, False),
    "P(w,l)": (False, True, True),
    "P(t,l)": (True, False, True),
    "P(t,w,l)": (True, True, True),
}
PARTITION_NAMES = list(PARTITIONS)
# Equation 1's G_a per attribute, and the two overall gaps: A(P0) - A(P1 u P2 u P3), A(P0) - A(P1 u P2).
GAP_NAMES = {"time": "G_t", "weather": "G_w", "locations": "G_l"}
OVERALL_GAPS = ("gap_overall", "gap_overall_paper")

GAP_UNITS = ("occurrence", "image")
# P1, P2, P3: the images with one, two or three uncommon attributes.
_COUNT_PARTITIONS = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}
_OUTPUT_PARTITIONS = list(_COUNT_PARTITIONS) + PARTITION_NAMES[1:]


class _Attribute(typing.NamedTuple):
    """One attribute as occurrences: (image row, value id, uncommon) triples, in row order."""

    rows: np.ndarray
    values: np.ndarray
    uncommon: np.ndarray


def compute_focus_metrics(
    predictions,
    references,
    time,
    weather,
    locations,
    uncommon_time,
    uncommon_weather,
    uncommon_locations,
    *,
    gap_unit: str = "occurrence",
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int | None = None,
) -> dict:
    """All FOCUS metrics of one set of predictions, as a JSON-serialisable dict.

    One row per image in every input; focus_generalization.py's _KWARGS_DESCRIPTION (and the metric
    card) describe the inputs and the output.

    >>> results = compute_focus_metrics(
    ...     [0, 1], [0, 0], [0, 1], [5, 5], [[5], [5]], [False, True], [False, False], [[], []], seed=0
    ... )
    >>> results["gap_overall"]["value"], results["per_class"]["truck"]["G_t"]
    (1.0, 1.0)
    """
    _check_options(gap_unit, confidence, n_bootstrap, seed)
    references, correct, attributes = _validated_inputs(
        predictions, references, time, weather, locations, uncommon_time, uncommon_weather, uncommon_locations
    )
    class_counts, stratum_correct, stratum_attributes = _strata(references, correct, attributes)
    gap_groups = _gap_groups(stratum_attributes, gap_unit)
    partition_members = _partition_members(stratum_attributes)
    counts = class_counts.sum(axis=0)
    gap_values = {name: _gaps(counts, group, stratum_correct) for name, group in gap_groups.items()}
    gap_intervals = _bootstrap_intervals(
        counts, gap_groups, stratum_correct, confidence, n_bootstrap, np.random.default_rng(seed)
    )
    class_gaps = {name: _gaps(class_counts, group, stratum_correct) for name, group in gap_groups.items()}
    partition_n = class_counts @ partition_members.T
    partition_correct = class_counts @ (partition_members * stratum_correct).T

    results = {
        "accuracy": _ratio(correct.sum(), correct.size),
        "n": int(correct.size),
        "correct": int(correct.sum()),
        "partitions": _accuracy_records(partition_correct.sum(axis=0), partition_n.sum(axis=0), confidence),
    }
    for name in gap_groups:
        low, high = gap_intervals[name]
        results[name] = {"value": _float(gap_values[name]), "ci_low": low, "ci_high": high}
    results["per_class"] = {}
    for c, class_name in enumerate(CLASS_NAMES):
        records = _accuracy_records(partition_correct[c], partition_n[c], confidence)
        results["per_class"][class_name] = {name: records[name] for name in _COUNT_PARTITIONS} | {
            _gap_name(attribute): _float(class_gaps[_gap_name(attribute)][c]) for attribute in attributes
        }
    results["heatmaps"] = {
        attribute: _heatmap(
            references, correct, occurrences, ATTRIBUTE_NAMES[attribute], class_gaps[_gap_name(attribute)]
        )
        for attribute, occurrences in attributes.items()
    }
    results["config"] = {
        "gap_unit": gap_unit,
        "confidence": float(confidence),
        "n_bootstrap": int(n_bootstrap),
        "seed": None if seed is None else int(seed),
    }
    return results


def format_summary(results: dict) -> str:
    """A short plain-text report of `compute_focus_metrics`' results, like WILDS' eval returns."""
    config = results["config"]
    level = f"{config['confidence']:.0%}"
    lines = [
        f"FOCUS: accuracy {_percent(results['accuracy'])} on {results['n']} images "
        f"(gap_unit={config['gap_unit']}, {level} intervals)",
        f"{'gap':<17} {'value':>8}  interval",
    ]
    for name in (*OVERALL_GAPS, *GAP_NAMES.values()):
        gap = results[name]
        lines.append(f"{name:<17} {_percent(gap['value']):>8}  {_interval(gap)}")
    lines.append(f"{'partition':<17} {'accuracy':>8}  {'n':>6}  interval")
    for name, record in results["partitions"].items():
        lines.append(f"{name:<17} {_percent(record['accuracy']):>8}  {record['n']:>6}  {_interval(record)}")
    return "\n".join(lines)


def _check_options(gap_unit, confidence, n_bootstrap, seed):
    if gap_unit not in GAP_UNITS:
        raise ValueError(f"gap_unit must be one of {GAP_UNITS}, got {gap_unit!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(
            f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}."
        )
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, numbers.Integral) or n_bootstrap < 0:
        raise ValueError(
            f"n_bootstrap must be a non-negative integer (0 turns the bootstrap off), got {n_bootstrap!r}."
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}.")


def _validated_inputs(
    predictions, references, time, weather, locations, uncommon_time, uncommon_weather, uncommon_locations
):
    """Check the inputs and return references, correct and the attributes as occurrences."""
    columns = {
        "predictions": predictions,
        "references": references,
        "time": time,
        "weather": weather,
        "locations": locations,
        "uncommon_time": uncommon_time,
        "uncommon_weather": uncommon_weather,
        "uncommon_locations": uncommon_locations,
    }
    n = len(predictions)
    for name, column in columns.items():
        if len(column) != n:
            raise ValueError(
                f"Every input needs one row per image, but predictions has {n} rows and {name} has "
                f"{len(column)}."
            )
    if n == 0:
        raise ValueError("No images to evaluate: predictions and the other inputs are empty.")

    predictions = _ids(
        "predictions",
        _integers("predictions", predictions),
        low=-1,
        high=len(CLASS_NAMES) - 1,
        note=" (-1: a prediction outside the ten FOCUS classes)",
    )
    references = _ids("references", _integers("references", references), low=0, high=len(CLASS_NAMES) - 1)
    attributes = {
        "time": _single_valued("time", time, uncommon_time),
        "weather": _single_valued("weather", weather, uncommon_weather),
        "locations": _location_occurrences(locations, uncommon_locations),
    }
    for attribute, occurrences in attributes.items():
        _check_none_is_never_uncommon(attribute, occurrences)
        _check_uncommon_is_per_class_and_value(attribute, occurrences, references)
    return references, predictions == references, attributes


def check_input_types(columns):
    """Raise a ValueError naming the first value of a wrong type in a batch of inputs (None: not given)."""
    checks = {"predictions": _integers, "references": _integers, "time": _integers, "weather": _integers,
              "uncommon_time": _flags, "uncommon_weather": _flags, "locations": _flattened,
              "uncommon_locations": _flattened}
    for name, check in checks.items():
        if columns.get(name) is not None:
            check(name, columns[name])


def _integers(name, column):
    values = np.asarray(column)
    if values.ndim != 1:
        raise ValueError(
            f"{name} must hold one id per image (a flat list), got an array of shape {values.shape}."
        )
    ids, bad = _whole_numbers(values, column)
    if bad is not None:
        value = column[bad] if isinstance(column, (list, tuple)) else values[bad]
        raise ValueError(f"{name}[{bad}] is {_shown(value)}, but {name} must hold integer ids.")
    return ids


_INT64 = np.iinfo(np.int64)


def _whole_numbers(values, column=None):
    """(values as int64, None), or (None, the position of the first value that is not an id).

    An id is a whole number within int64: an integer, or a float with no fraction (2.0, as numpy
    or torch arrays hold class ids). Booleans, NaN, 2.7, 2**70 and strings are not ids; each is
    named by its own position. `column` is the input as given, to find booleans in a list that
    numpy would have turned into integers ([True, 1] -> [1, 1]).
    """
    if values.dtype.kind in "iu" and not (isinstance(column, (list, tuple)) and any(type(v) is bool for v in column)):
        if values.dtype.kind == "u" and values.size and values.max() > _INT64.max:
            return None, int(np.argmax(values > _INT64.max))
        return values.astype(np.int64, copy=False), None
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.trunc(values)) | (values < _INT64.min) | (values >= 2.0**63)
        if bad.any():
            return None, int(np.argmax(bad))
        return values.astype(np.int64), None
    for position, value in enumerate(column if isinstance(column, (list, tuple)) else values):
        if not _is_id(value):
            return None, position
    return values.astype(np.int64), None


def _is_id(value):
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return _INT64.min <= value <= _INT64.max
    return isinstance(value, (float, np.floating)) and np.isfinite(value) and value == int(value) and (
        _INT64.min <= value < 2.0**63)


def _shown(value, width=80):
    """A value as the user wrote it, for error messages: 7, not np.int64(7); a long value clipped.

    >>> _shown(np.int64(7)), _shown("x" * 1000).endswith("... (1002 characters)")
    ('7', True)
    """
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"


def _ids(name, values, low, high, rows=None, note=""):
    """Return `values` after checking they lie in [low, high]; `rows` maps flattened lists to rows."""
    outside = np.flatnonzero((values < low) | (values > high))
    if outside.size:
        row = outside[0] if rows is None else rows[outside[0]]
        raise ValueError(
            f"{name}[{row}] holds {values[outside[0]]}, but {name} ids run from {low} to {high}{note}."
        )
    return values


def _single_valued(attribute, column, uncommon):
    """An attribute with one value per image (time, weather) as occurrences."""
    values = _ids(attribute, _integers(attribute, column), low=0, high=len(ATTRIBUTE_NAMES[attribute]) - 1)
    return _Attribute(np.arange(values.size), values, _flags(f"uncommon_{attribute}", uncommon))


def _flags(name, column):
    values = np.asarray(column)
    if values.ndim != 1:
        raise ValueError(
            f"{name} must hold one flag per image (a flat list), got an array of shape {values.shape}."
        )
    if values.dtype.kind == "b":
        return values
    if values.dtype.kind in "iu":
        is_flag = (values == 0) | (values == 1)
    else:
        is_flag = np.array([isinstance(value, (bool, np.bool_)) for value in values])
    bad = np.flatnonzero(~is_flag)
    if bad.size:
        raise ValueError(
            f"{name}[{bad[0]}] is {_shown(values[bad[0]])}, but {name} must hold booleans (True, False)."
        )
    return values.astype(bool)


def _flattened(name, lists):
    """A list of lists as (row index, value) arrays, one entry per value, in row order."""
    try:
        lengths = np.fromiter(map(len, lists), dtype=np.intp, count=len(lists))
    except TypeError:
        row = next(i for i, value in enumerate(lists) if not hasattr(value, "__len__"))
        raise ValueError(
            f"{name}[{row}] is {_shown(lists[row])}, but each row of {name} must be a list of location ids."
        ) from None
    flat = list(itertools.chain.from_iterable(lists))
    values = np.asarray(flat)
    rows = np.repeat(np.arange(len(lists)), lengths)
    if values.size == 0:
        return rows, values.astype(np.int64)
    ids, bad = _whole_numbers(values, flat)
    if bad is not None:
        raise ValueError(
            f"{name}[{rows[bad]}] holds {_shown(flat[bad])}, but {name} must hold integer location ids."
        )
    return rows, _ids(name, ids, 0, len(LOCATION_NAMES) - 1, rows)


def _location_occurrences(locations, uncommon_locations):
    rows, values = _flattened("locations", locations)
    uncommon_rows, uncommon_values = _flattened("uncommon_locations", uncommon_locations)
    keys = rows * len(LOCATION_NAMES) + values
    uncommon_keys = uncommon_rows * len(LOCATION_NAMES) + uncommon_values

    sorted_keys = np.sort(keys)
    repeated = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if repeated.size:
        row, value = divmod(int(sorted_keys[repeated[0]]), len(LOCATION_NAMES))
        raise ValueError(
            f"locations[{row}] lists {value} ({LOCATION_NAMES[value]!r}) twice; list each location once."
        )
    missing = np.flatnonzero(~np.isin(uncommon_keys, keys))
    if missing.size:
        row, value = uncommon_rows[missing[0]], uncommon_values[missing[0]]
        raise ValueError(
            f"uncommon_locations[{row}] holds {value} ({LOCATION_NAMES[value]!r}), which is not among the "
            f"image's locations {values[rows == row].tolist()}; uncommon_locations must be a subset of "
            "locations."
        )
    return _Attribute(rows, values, np.isin(keys, uncommon_keys))


def _check_none_is_never_uncommon(attribute, occurrences):
    none = ATTRIBUTE_NAMES[attribute].index("none")
    marked = np.flatnonzero(occurrences.uncommon & (occurrences.values == none))
    if marked.size:
        row = occurrences.rows[marked[0]]
        field = f"uncommon_{attribute}"
        raise ValueError(
            f"{field}[{row}] marks {attribute} {none} ('none') uncommon, but 'none' (not determinable) is "
            "never uncommon; leave it out of the uncommon settings."
        )


def _check_uncommon_is_per_class_and_value(attribute, occurrences, references):
    """Raise unless every image of a class with a value agrees on whether that value is uncommon.

    The metric receives flags per image rather than an uncommon table, so that users' own tables
    work; a table marks (class, value) pairs, so flags that differ within a pair are a bug upstream.
    """
    n_values = len(ATTRIBUTE_NAMES[attribute])
    cells = references[occurrences.rows] * n_values + occurrences.values
    total = np.bincount(cells, minlength=len(CLASS_NAMES) * n_values)
    marked = np.bincount(cells[occurrences.uncommon], minlength=len(CLASS_NAMES) * n_values)
    disputed = np.flatnonzero(((marked > 0) & (marked < total))[cells])
    if disputed.size:
        cell = cells[disputed[0]]
        in_cell = cells == cell
        row_uncommon = occurrences.rows[np.flatnonzero(in_cell & occurrences.uncommon)[0]]
        row_common = occurrences.rows[np.flatnonzero(in_cell & ~occurrences.uncommon)[0]]
        class_id, value = divmod(int(cell), n_values)
        field = f"uncommon_{attribute}"
        raise ValueError(
            f"{field}[{row_uncommon}] marks {attribute} {ATTRIBUTE_NAMES[attribute][value]!r} uncommon for "
            f"class {CLASS_NAMES[class_id]!r}, but row {row_common} (same class and value) does not. A "
            "(class, value) pair is common or uncommon for all its images: derive the flags from one table."
        )


def _gap_name(attribute):
    return GAP_NAMES[attribute]


def _strata(references, correct, attributes):
    """Group the images into strata that every metric but the heatmaps treats alike.

    An image's stratum is whether it is correct and, per attribute, how many of its values are
    common and how many uncommon ("none" left out). Returns the class x stratum image counts, and
    per stratum its correctness and, per attribute, its (common, uncommon) value counts.
    """
    fields = [correct.astype(np.int64)]
    for attribute, occurrences in attributes.items():
        none = ATTRIBUTE_NAMES[attribute].index("none")
        common = ~occurrences.uncommon & (occurrences.values != none)
        fields.append(np.bincount(occurrences.rows[common], minlength=correct.size))
        fields.append(np.bincount(occurrences.rows[occurrences.uncommon], minlength=correct.size))
    shape = tuple(int(field.max()) + 1 for field in fields)
    size = int(np.prod(shape))
    codes = references * size + np.ravel_multi_index(fields, shape)
    class_counts = np.bincount(codes, minlength=len(CLASS_NAMES) * size).reshape(len(CLASS_NAMES), size)
    present = np.flatnonzero(class_counts.any(axis=0))
    stratum_fields = np.unravel_index(present, shape)
    stratum_attributes = {
        attribute: (stratum_fields[1 + 2 * i], stratum_fields[2 + 2 * i])
        for i, attribute in enumerate(attributes)
    }
    return class_counts[:, present], stratum_fields[0], stratum_attributes


def _gap_groups(stratum_attributes, gap_unit):
    """Per gap, the weight of each stratum in its common group and in its uncommon group.

    "occurrence" weighs an image by its number of common (uncommon) values, so an image with one
    common and one uncommon location is in both groups; "image" weighs every image 0 or 1: uncommon
    when any of its values is uncommon, common when it has a value and none is uncommon. With one
    value per image, as for time and weather, the two agree.
    """
    n_uncommon = np.sum([uncommon > 0 for _, uncommon in stratum_attributes.values()], axis=0)
    groups = {
        OVERALL_GAPS[0]: (n_uncommon == 0, n_uncommon > 0),
        # The paper's footnote 2 leaves P3 out of its headline overall gaps: A(P0) - A(P1 u P2).
        OVERALL_GAPS[1]: (n_uncommon == 0, (n_uncommon == 1) | (n_uncommon == 2)),
    }
    for attribute, (common, uncommon) in stratum_attributes.items():
        if gap_unit == "image":
            common, uncommon = (uncommon == 0) & (common > 0), uncommon > 0
        groups[_gap_name(attribute)] = (common, uncommon)
    return {
        name: (common.astype(float), uncommon.astype(float)) for name, (common, uncommon) in groups.items()
    }


def _partition_members(stratum_attributes):
    """Partition x stratum membership, rows in _OUTPUT_PARTITIONS order."""
    uncommon = [counts > 0 for _, counts in stratum_attributes.values()]  # time, weather, locations
    n_uncommon = np.sum(uncommon, axis=0)
    members = [n_uncommon == count for count in _COUNT_PARTITIONS.values()]
    for name in PARTITION_NAMES[1:]:
        members.append(np.all([flags == wanted for flags, wanted in zip(uncommon, PARTITIONS[name])], axis=0))
    return np.array(members, dtype=np.int64)


def _gaps(counts, group, correct):
    """Common minus uncommon accuracy for each row of stratum counts; NaN where a group is empty."""
    common, uncommon = group
    with np.errstate(invalid="ignore", divide="ignore"):
        common_accuracy = counts @ (correct * common) / (counts @ common)
        uncommon_accuracy = counts @ (correct * uncommon) / (counts @ uncommon)
    return common_accuracy - uncommon_accuracy


def _bootstrap_intervals(counts, gap_groups, correct, confidence, n_bootstrap, rng):
    """Percentile intervals of the gaps over bootstrap resamples of the images.

    Resampling n images with replacement changes the gaps only through how many images of each
    stratum it draws, and those numbers are Multinomial(n, stratum shares): drawing them directly is
    the same bootstrap as an (n_bootstrap, n) index matrix, at a cost independent of n. An image's
    locations stay together because the image, not the occurrence, is drawn. Replicates in which
    a gap's group is empty are left out of that gap's interval.
    """
    if n_bootstrap == 0:
        return {name: (None, None) for name in gap_groups}
    n = counts.sum()
    replicates = rng.multinomial(n, counts / n, size=n_bootstrap)
    tail = (1 - confidence) / 2
    intervals = {}
    for name, group in gap_groups.items():
        values = _gaps(replicates, group, correct)
        values = values[~np.isnan(values)]
        low, high = np.quantile(values, [tail, 1 - tail]) if values.size else (None, None)
        intervals[name] = (_float(low), _float(high))
    return intervals


def _accuracy_records(correct, n, confidence):
    """Accuracy, n, correct and Wilson interval per partition, in _OUTPUT_PARTITIONS order."""
    low, high = wilson_interval(correct, n, confidence)
    return {
        name: {
            "accuracy": _ratio(correct[i], n[i]),
            "n": int(n[i]),
            "correct": int(correct[i]),
            "ci_low": _float(low[i]),
            "ci_high": _float(high[i]),
        }
        for i, name in enumerate(_OUTPUT_PARTITIONS)
    }


def wilson_interval(correct, n, confidence=0.95):
    """Wilson score interval of a binomial proportion correct / n, elementwise; NaN where n is 0.

    Public so that the FOCUS harness uses this implementation for its other intervals (the feature
    probes) rather than a copy. The bounds lie in [0, 1], exactly 0 at p = 0 and exactly 1 at p = 1.

    >>> low, high = wilson_interval([5, 0], [10, 10])
    >>> [round(float(v), 4) for v in low], [round(float(v), 4) for v in high]
    ([0.2366, 0.0], [0.7634, 0.2775])
    """
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(
            f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}."
        )
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    correct = np.asarray(correct, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = correct / n
        shrink = 1 + z**2 / n
        center = (p + z**2 / (2 * n)) / shrink
        half = z / shrink * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    # At p = 0 (p = 1) the lower (upper) bound is exactly 0 (1); the formula leaves rounding residue.
    low = np.clip(np.where(p == 0, 0.0, center - half), 0, 1)
    high = np.clip(np.where(p == 1, 1.0, center + half), 0, 1)
    return low, high


def _heatmap(references, correct, occurrences, value_names, class_gaps):
    """One attribute's class x value table (Appendix E): per occurrence, "none" left out.

    A cell is uncommon when its images mark the value uncommon. A cell with no image is marked
    False: the inputs carry flags, not the uncommon table, so they say nothing about it.
    """
    shape = (len(CLASS_NAMES), len(value_names))
    cells = references[occurrences.rows] * shape[1] + occurrences.values
    kept = [value for value, name in enumerate(value_names) if name != "none"]

    def table(mask):
        return np.bincount(cells[mask], minlength=shape[0] * shape[1]).reshape(shape)[:, kept]

    total = table(slice(None))
    n_correct = table(correct[occurrences.rows])
    uncommon = table(occurrences.uncommon) > 0
    return {
        "classes": list(CLASS_NAMES),
        "values": [value_names[value] for value in kept],
        "correct": n_correct.tolist(),
        "total": total.tolist(),
        "accuracy": [[_ratio(c, t) for c, t in zip(*row)] for row in zip(n_correct, total)],
        "uncommon": uncommon.tolist(),
        "gap": [_float(gap) for gap in class_gaps],
    }


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else None


def _float(value):
    """A JSON-safe float: None for a missing or undefined (NaN) value."""
    return float(value) if value is not None and np.isfinite(value) else None


def _percent(value):
    return "n/a" if value is None else f"{value:.2%}"


def _interval(record):
    if record["ci_low"] is None:
        return "n/a"
    return f"[{_percent(record['ci_low'])}, {_percent(record['ci_high'])}]"

