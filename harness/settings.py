"""The choices and bounds the harness's options offer, in one module that imports nothing: the command lines build
their parsers from it, so that `--help` and a mistyped option answer at once, before torch is imported.

The modules that use a choice (harness.labels, preprocess, data, distributed, report) take it from here.
"""

import math
import os

# How a model's outputs are scored (harness/labels.py).
LABEL_SPACES = ("imagenet", "focus")
MAPPINGS = ("paper", "restricted")

# How an image becomes a model's input (harness/preprocess.py).
PROTOCOLS = ("paper", "timm")
# The protocol a model gets when --preprocess is not given, by the library it comes from.
DEFAULT_PROTOCOL = {"timm": "paper", "torchvision": "paper", "open_clip": "timm", "transformers": "timm"}
CROP_MODES = ("center", "squash", "border")  # timm's eval crop modes
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "box", "hamming", "lanczos")  # timm's names for PIL's filters
OVERRIDES = ("img_size", "crop_pct", "crop_mode", "interpolation", "mean", "std")  # as timm validate.py's
# Bounds on the overrides: every worker resizes each image to input size / crop_pct, so a crop_pct of
# 0.001 or an input of 10^5 pixels would ask for gigapixel images.
MAX_IMG_SIZE, MIN_CROP_PCT, MAX_CROP_PCT = 4096, 0.1, 2.0
MAX_RESIZE = math.floor(MAX_IMG_SIZE / MIN_CROP_PCT)  # the largest resize the bounded overrides can ask for

# Which images (harness/data.py): the first --limit by file name, random ones, or each class's share.
SUBSETS = ("stratified", "random", "first")

# How the forward pass runs (harness/distributed.py).
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES_HELP = "auto, cpu, cuda or cuda:N"

# The report's figures (harness/report.py): drawn now, by a process of their own, or not at all.
FIGURE_MODES = ("now", "background", "none")

# A probe's balanced split holds this many images with the location, and as many without, at the least: one of
# each to train, one to test (harness/probe_cells.py).
MIN_SPLIT_IMAGES = 2

# Bounds checked before any work starts: every worker is a process holding its own decoder, and a seed must be
# one numpy and torch accept.
MAX_WORKERS = max(8, 4 * (os.cpu_count() or 1))
MAX_BATCH_SIZE = 65_536
MAX_SEED = 2**32 - 1
MAX_IMAGES = 10_000_000
