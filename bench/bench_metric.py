"""Time the FOCUS metric on FOCUS-sized synthetic inputs against a plain numpy accuracy.

    python bench/bench_metric.py [--n-images 23902] [--n-bootstrap 1000] [--repeats 5]

The inputs have FOCUS's size and shape (several locations per image, flags from the paper's
uncommon table); only the timings matter, so labels and predictions are random. Both timings are
the best of --repeats runs in the same process.
"""

import argparse
import time

import numpy as np

from focus_tools.schema import CLASS_NAMES, LOCATION_NAMES, TIME_NAMES, WEATHER_NAMES, load_uncommon_table, uncommon_masks
from harness.scoring import load_metric_module


def synthetic_inputs(n_images, seed):
    """Random FOCUS-like inputs: numpy columns, locations as lists of 1 to 3 ids (or ["none"])."""
    rng = np.random.default_rng(seed)
    references = rng.integers(len(CLASS_NAMES), size=n_images)
    time_ids = rng.choice(len(TIME_NAMES), size=n_images, p=[0.84, 0.05, 0.11])
    weather_ids = rng.choice(len(WEATHER_NAMES), size=n_images, p=[0.09, 0.02, 0.09, 0.01, 0.01, 0.40, 0.38])
    n_locations = rng.choice(4, size=n_images, p=[0.13, 0.55, 0.27, 0.05])  # 0 means "none"
    none_location = LOCATION_NAMES.index("none")
    place_order = rng.random((n_images, none_location)).argsort(axis=1)
    locations = [sorted(place_order[i, :k].tolist()) or [none_location] for i, k in enumerate(n_locations)]

    masks = uncommon_masks(load_uncommon_table())
    uncommon_time = masks["time"][references, time_ids]
    uncommon_weather = masks["weather"][references, weather_ids]
    location_table = masks["locations"]
    uncommon_locations = [
        [place for place in places if location_table[class_id, place]]
        for class_id, places in zip(references.tolist(), locations)
    ]
    n_uncommon = (
        uncommon_time.astype(int) + uncommon_weather + np.array([bool(u) for u in uncommon_locations])
    )
    hit = rng.random(n_images) < 0.72 - 0.2 * n_uncommon
    predictions = np.where(hit, references, rng.integers(-1, len(CLASS_NAMES), size=n_images))
    return {
        "predictions": predictions,
        "references": references,
        "time": time_ids,
        "weather": weather_ids,
        "locations": locations,
        "uncommon_time": uncommon_time,
        "uncommon_weather": uncommon_weather,
        "uncommon_locations": uncommon_locations,
    }


def best_time(function, repeats):
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_argument_group("inputs")
    data.add_argument("--n-images", type=int, default=23902, help="rows (FOCUS has 23,902 images)")
    data.add_argument("--seed", type=int, default=0, help="seed of the synthetic inputs and the bootstrap")
    metric = parser.add_argument_group("metric")
    metric.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap replicates")
    metric.add_argument(
        "--gap-unit", choices=["occurrence", "image"], default="occurrence", help="how G_l counts images"
    )
    timing = parser.add_argument_group("timing")
    timing.add_argument("--repeats", type=int, default=5, help="runs per timing; the best one counts")
    args = parser.parse_args(argv)

    focus_generalization = load_metric_module()
    inputs = synthetic_inputs(args.n_images, args.seed)
    predictions, references = inputs["predictions"], inputs["references"]

    def compute():
        return focus_generalization.compute_focus_metrics(
            **inputs, gap_unit=args.gap_unit, n_bootstrap=args.n_bootstrap, seed=args.seed
        )

    metric_seconds = best_time(compute, args.repeats)
    # The baseline is cheap enough that a single run is mostly timer noise: time 100 per run.
    accuracy_seconds = (
        best_time(lambda: [np.mean(predictions == references) for _ in range(100)], args.repeats) / 100
    )

    n_occurrences = sum(map(len, inputs["locations"]))
    print(f"inputs: {args.n_images} images, {n_occurrences} locations, n_bootstrap={args.n_bootstrap}")
    print(f"compute_focus_metrics: {metric_seconds * 1e3:.1f} ms (best of {args.repeats})")
    print(f"np.mean(pred == ref):  {accuracy_seconds * 1e6:.1f} us (best of {args.repeats} x 100)")
    print(f"ratio: {metric_seconds / accuracy_seconds:.0f}x")
    print()
    print(focus_generalization.format_summary(compute()))


if __name__ == "__main__":
    main()
