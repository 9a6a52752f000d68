"""Conversion benchmark: convert's time against reading and writing the same files, and its peak memory
at two release sizes.

Each measurement runs in a fresh subprocess, so that its peak RSS is its own, and reports wall time
and CPU time (user + system, every thread: getrusage), which a busy machine disturbs less. The
baselines, measured in the same run on the same warm page cache: reading every image file once,
and reading and writing them once to one file (the read-and-write floor, the least any conversion
that writes the images out must do). Timings are the best of --repeats rounds, the three
contenders taking turns in each round.

    python bench/bench_convert.py [--sizes 1000 10000] [--repeats 3] [--workdir bench/out/convert]

The synthetic releases take minutes to write: they are kept in the workdir and used again by later
runs with the same sizes.
"""

from focus_tools import convert, sample
import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

# Targets (issue 12): convert within ×1.5 of the read-and-write floor at the largest size, and memory
# that does not grow with the release.
TARGET_OVER_FLOOR = 1.5
TARGET_MEMORY_RATIO = 1.2

TIMED = textwrap.dedent("""
    import json, resource, sys, time
    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    def report(start_wall, start_cpu, **extra):
        print(json.dumps({"seconds": time.perf_counter() - start_wall, "cpu_seconds": cpu() - start_cpu,
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))
""")

CONVERT = TIMED + textwrap.dedent("""
    import focus_dataset
    start_wall, start_cpu = time.perf_counter(), cpu()
    convert.convert(sys.argv[1], sys.argv[2])
    report(start_wall, start_cpu)
""")

COPY = TIMED + textwrap.dedent("""
    import os, sqlite3
    from pathlib import Path
    start_wall, start_cpu = time.perf_counter(), cpu()
    rows = sqlite3.connect(Path(sys.argv[1]) / "annotations.db").execute("SELECT * FROM annotations").fetchall()
    with open(sys.argv[2], "wb") as sink:
        for row in rows:
            sink.write((Path(sys.argv[1]) / row[0].lstrip("/")).read_bytes())
    report(start_wall, start_cpu)
    os.remove(sys.argv[2])
""")

READ = TIMED + textwrap.dedent("""
    import sqlite3
    from pathlib import Path
    start_wall, start_cpu = time.perf_counter(), cpu()
    rows = sqlite3.connect(Path(sys.argv[1]) / "annotations.db").execute("SELECT * FROM annotations").fetchall()
    total = sum(len((Path(sys.argv[1]) / row[0].lstrip("/")).read_bytes()) for row in rows)
    report(start_wall, start_cpu, bytes=total)
""")


def run(script: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def sample_release(workdir: Path, size: int, image_size: tuple[int, int]) -> Path:
    """The synthetic release of `size` images: the one an earlier run wrote, or a new one."""
    import focus_dataset

    release = workdir / f"release-{size}-{image_size[0]}-{image_size[1]}"
    if not release.exists():
        # Written beside its name and renamed when complete: an interrupted run leaves no half release.
        partial = release.with_name(release.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        sample.write_sample_release(partial, size, seed=size, size_range=image_size)
        partial.rename(release)
    return release


def measure(release: Path, workdir: Path, repeats: int) -> dict:
    """Best of `repeats` rounds of read, copy and convert on one release, and convert's peak RSS."""
    run(READ, str(release))  # warm the page cache for every contender
    reads, copies, converts, loads = [], [], [], []
    for _ in range(repeats):
        loads.append(os.getloadavg()[0])
        reads.append(run(READ, str(release)))
        copies.append(run(COPY, str(release), str(workdir / "copy.bin")))
        converts.append(run(CONVERT, str(release), str(workdir / "converted")))
        shutil.rmtree(workdir / "converted")
    row = {"images": None, "megabytes": reads[0]["bytes"] / 1e6}
    for name, runs in (("read", reads), ("copy", copies), ("convert", converts)):
        row[f"{name}_s"] = min(r["seconds"] for r in runs)
        row[f"{name}_cpu_s"] = min(r["cpu_seconds"] for r in runs)
    row["convert_peak_rss_mb"] = max(r["peak_rss_mb"] for r in converts)
    row["load_average"] = [min(loads), max(loads)]
    for name in ("read", "copy"):
        row[f"convert_over_{name}"] = row["convert_s"] / row[f"{name}_s"]
        row[f"convert_over_{name}_cpu"] = row["convert_cpu_s"] / row[f"{name}_cpu_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000],
                        help="numbers of images of the releases (default: 1000 10000)")
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/convert"),
                        help="where the releases are kept and the conversions written (default: bench/out/convert)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; timings are the best of them (default: 3)")
    parser.add_argument("--image-size", type=int, nargs=2, default=[240, 800], metavar=("MIN", "MAX"),
                        help="side lengths of the synthetic JPEGs; web photos are a few hundred pixels "
                             "(default: 240 800)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    args.workdir.mkdir(parents=True, exist_ok=True)

    rows = []
    for size in args.sizes:
        release = sample_release(args.workdir, size, tuple(args.image_size))
        rows.append({**measure(release, args.workdir, args.repeats), "images": size})
    print(f"{'images':>8} {'MB':>6} {'read s (cpu)':>14} {'copy s (cpu)':>14} {'convert s (cpu)':>16} "
          f"{'convert/read':>13} {'convert/copy':>13} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['images']:>8} {r['megabytes']:>6.0f} {r['read_s']:>6.2f} ({r['read_cpu_s']:>5.2f}) "
              f"{r['copy_s']:>6.2f} ({r['copy_cpu_s']:>5.2f}) {r['convert_s']:>7.2f} ({r['convert_cpu_s']:>5.2f}) "
              f"{r['convert_over_read']:>12.2f}× {r['convert_over_copy']:>12.2f}× {r['convert_peak_rss_mb']:>12.0f}")
    largest, smallest = rows[-1], rows[0]
    print(f"convert / read-and-write floor at {largest['images']:,} images: ×{largest['convert_over_copy']:.2f} "
          f"wall, ×{largest['convert_over_copy_cpu']:.2f} CPU (target ≤ ×{TARGET_OVER_FLOOR})")
    print(f"convert / read at {largest['images']:,} images: ×{largest['convert_over_read']:.2f} wall, "
          f"×{largest['convert_over_read_cpu']:.2f} CPU")
    if len(rows) > 1:
        print(f"convert peak RSS, {largest['images']:,} vs {smallest['images']:,} images: "
              f"×{largest['convert_peak_rss_mb'] / smallest['convert_peak_rss_mb']:.2f} for "
              f"×{largest['megabytes'] / smallest['megabytes']:.1f} the data "
              f"(target: flat, ≤ ×{TARGET_MEMORY_RATIO})")
    loads = [load for r in rows for load in r["load_average"]]
    print(f"load average during the runs: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores. Convert "
          "reads in one thread while another writes: with cores busy they overlap less, and its wall-clock ratio "
          "moves toward its CPU ratio.")
    print("read: every image file read once; copy: read and written to one file, the least any conversion "
          "must do; convert: checks every annotation and image header, writes Parquet, the report and the card. "
          "CPU counts every thread: convert reads and writes in two.")
    (args.workdir / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
