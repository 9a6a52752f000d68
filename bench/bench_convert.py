"""Conversion benchmark: peak memory at two release sizes, and convert time against reading the files.

Each measurement runs in a fresh subprocess so its peak RSS is its own. The baselines, measured in
the same run on the same warm page cache: reading every image file once, and copying them (read
and write the same bytes once), the floor for any conversion that writes the images out.

    python bench/bench_convert.py [--sizes 1000 10000] [--workdir bench/out]
"""

import argparse
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

CONVERT = textwrap.dedent("""
    import json, resource, sys, time
    import focus_dataset
    start = time.perf_counter()
    focus_dataset.convert(sys.argv[1], sys.argv[2])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")

COPY = textwrap.dedent("""
    import json, os, sqlite3, sys, time
    from pathlib import Path
    start = time.perf_counter()
    rows = sqlite3.connect(Path(sys.argv[1]) / "annotations.db").execute("SELECT * FROM annotations").fetchall()
    with open(sys.argv[2], "wb") as sink:
        for row in rows:
            sink.write((Path(sys.argv[1]) / row[0].lstrip("/")).read_bytes())
    seconds = time.perf_counter() - start
    os.remove(sys.argv[2])
    print(json.dumps({"seconds": seconds}))
""")

READ = textwrap.dedent("""
    import json, resource, sqlite3, sys, time
    from pathlib import Path
    start = time.perf_counter()
    rows = sqlite3.connect(Path(sys.argv[1]) / "annotations.db").execute("SELECT * FROM annotations").fetchall()
    total = sum(len((Path(sys.argv[1]) / row[0].lstrip("/")).read_bytes()) for row in rows)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "bytes": total,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def run(script: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/convert"))
    parser.add_argument("--repeats", type=int, default=2, help="best of N for the timings")
    parser.add_argument("--image-size", type=int, nargs=2, default=[240, 800], metavar=("MIN", "MAX"),
                        help="side lengths of the synthetic JPEGs (web photos are a few hundred pixels)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import focus_dataset

    shutil.rmtree(args.workdir, ignore_errors=True)
    rows = []
    for size in args.sizes:
        release = focus_dataset.write_sample_release(args.workdir / f"release-{size}", size, seed=size,
                                                     size_range=tuple(args.image_size))
        run(READ, str(release))  # warm the page cache for both contenders
        reads, copies, converts = [], [], []
        for repeat in range(args.repeats):
            reads.append(run(READ, str(release)))
            copies.append(run(COPY, str(release), str(args.workdir / "copy.bin")))
            output = args.workdir / f"focus-{size}-{repeat}"
            converts.append(run(CONVERT, str(release), str(output)))
            shutil.rmtree(output)
        read = min(reads, key=lambda r: r["seconds"])
        convert = min(converts, key=lambda r: r["seconds"])
        copy = min(copies, key=lambda r: r["seconds"])
        rows.append({
            "images": size,
            "megabytes": read["bytes"] / 1e6,
            "read_s": read["seconds"],
            "convert_s": convert["seconds"],
            "convert_over_read": convert["seconds"] / read["seconds"],
            "copy_s": copy["seconds"],
            "convert_over_copy": convert["seconds"] / copy["seconds"],
            "convert_peak_rss_mb": max(c["peak_rss_mb"] for c in converts),
            "read_peak_rss_mb": max(r["peak_rss_mb"] for r in reads),
        })
    print(f"{'images':>8} {'MB':>8} {'read s':>8} {'copy s':>8} {'convert s':>10} {'convert/read':>13} "
          f"{'convert/copy':>13} {'convert peak RSS MB':>20}")
    for r in rows:
        print(f"{r['images']:>8} {r['megabytes']:>8.1f} {r['read_s']:>8.2f} {r['copy_s']:>8.2f} "
              f"{r['convert_s']:>10.2f} "
              f"{r['convert_over_read']:>13.2f} {r['convert_over_copy']:>13.2f} {r['convert_peak_rss_mb']:>20.0f}")
    if len(rows) > 1:
        print(f"convert peak RSS ratio {rows[-1]['images']} vs {rows[0]['images']} images: "
              f"{rows[-1]['convert_peak_rss_mb'] / rows[0]['convert_peak_rss_mb']:.2f} "
              f"(data grew {rows[-1]['megabytes'] / rows[0]['megabytes']:.1f}x)")
    print("read: every image file read once (warm page cache); copy: read and written to one file, the least "
          "any conversion must do; convert: checks every annotation and image header, writes Parquet and the card.")
    (args.workdir / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
