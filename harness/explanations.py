"""Failure maps as a library: Grad-CAM and Guided Grad-CAM of misclassified uncommon images (the paper's Figure 4):
`explain_models(data, models, options)`; harness/gradcam.py (focus-gradcam) is its command line.

Kattakinda & Feizi (ICML 2022), Figure 4: where does a model look when it fails in an uncommon
setting? For each image, the target is the class the model predicts (its top-1 ImageNet class), and
each panel shows the original image (as decoded, its aspect kept), the Grad-CAM map over the image as
the model sees it (resized and cropped per the model's data config), and the Guided Grad-CAM map
(guided backpropagation times Grad-CAM) on that input, titled with the file name, the true class, the
predicted ImageNet class and the FOCUS class it maps to.

Images come from a run's predictions (--run RUN_DIR: the misclassified images with at least one
uncommon attribute, most uncommon attributes first, then the most confident mistakes) or are named
(--images). Maps come from the `grad-cam` package (pytorch_grad_cam), smoothed as the authors made
Figure 4 (its aug_smooth: the maps of the image flipped and not, times 0.9, 1.0 and 1.1, averaged;
--no-aug-smooth for plain maps). The target layer is the last convolutional stage, found per
architecture (see find_target_layer), or named with --target-layer.

Writes, per model, into the run folder:

    <model>/gradcam/NNN_<file name>.png   one panel per image
    <model>/gradcam/index.html            the panels with their captions
    <model>/gradcam/gradcam.json          per image: classes, prediction, target layer, map peak

The images make one pass over the data (harness.passes): a distributed run computes the maps across
processes and draws the panels on the main one; an error in one process (an image that cannot be
decoded) is shared with the others, so that all of them stop with it instead of waiting.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import html
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image
import pyarrow as pa
import pyarrow.compute as pc
import timm.layers
import torch
from accelerate import Accelerator
from matplotlib.figure import Figure
from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel
from pytorch_grad_cam.utils.image import deprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from focus_tools import schema
from harness import labels, passes, preprocess, runfolder, scoring, transforms
from harness.analysis import AnalysisInput, analysis_input, for_each_model
from harness.data import DataSelection, decode_error, decode_image, image_files
from harness.distributed import accelerator_for, model_folder_lock, run_shared
from harness.models.adapters import LinearHeadClassifier
from harness.models.open_clip_models import ZeroShotClassifier
from harness.models.preparation import ModelOptions, prepare_model
from harness.runfolder import now

logger = logging.getLogger("focus-gradcam")

GRADCAM_DIR = "gradcam"
SMOOTHING = {True: "Grad-CAM smoothed as the authors did (aug_smooth: flips x input scales 0.9, 1.0, 1.1)",
             False: "Grad-CAM without test-time smoothing (--no-aug-smooth)"}
INDEX_FILE = "index.html"
RECORDS_FILE = "gradcam.json"
# The last convolutional stage of timm's families, tried in this order (a top-level attribute each);
# then timm's feature_info (its deepest feature map), then the last child holding a convolution.
TARGET_LAYER_CANDIDATES = (
    ("layer4", "ResNet family: the last residual stage"),
    ("bn2", "EfficientNet: conv_head with bn2 and its activation, the map the head pools"),
    ("stages", "ConvNeXt and other staged models: the last stage"),
    ("blocks", "MobileNet-v3 and other block lists: the last block"),
)
# Where harness.models' adapters keep the network they wrap: a torchvision or transformers classifier
# (LinearHeadClassifier.model), a CLIP image tower (ZeroShotClassifier.visual).
WRAPPED_NETWORKS = ((LinearHeadClassifier, "model"), (ZeroShotClassifier, "visual"))
# Guided backpropagation lets only positive gradients through each activation. pytorch_grad_cam's
# GuidedBackpropReLUModel does so for nn.ReLU; these are wrapped to get the same rule, so that
# EfficientNet-Lite (ReLU6), EfficientNet (SiLU) and MobileNet-v3 (Hardswish) get guided maps too.
GUIDED_ACTIVATIONS = (nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.LeakyReLU, nn.ELU, nn.Mish,
                      timm.layers.activations.GELU, timm.layers.activations.Swish,
                      timm.layers.activations.HardSwish, timm.layers.activations.Mish)


@dataclasses.dataclass(frozen=True)
class GradcamOptions(ModelOptions):
    """focus-gradcam's options as plain values (and, from ModelOptions, how the models are built).

    run: an earlier focus-eval run whose misclassified uncommon images (and models, weights, preprocessing,
    images) are explained; images: the file names to explain instead; the others as build_parser says.
    """

    run: str | Path | None = None
    images: tuple[str, ...] | None = None
    selection: DataSelection = DataSelection()
    selection_given: bool = False
    cache_dir: str | None = None
    output: str | Path | None = None
    precision: str = "fp32"
    cpu: bool = False
    batch_size: int = 8
    max_images: int = 16
    target_layer: str | None = None
    aug_smooth: bool = True
    quiet: bool = False

    @property
    def run_dir(self) -> Path:
        return Path(self.output or self.run or "runs/focus")


# --------------------------------------------------------------------------------------------
# Which images
# --------------------------------------------------------------------------------------------

def select_failures(predictions: pa.Table, max_images: int) -> list[str]:
    """File names of misclassified images with at least one uncommon attribute, the most telling first.

    Order: more uncommon attributes first, then higher confidence in the wrong top-1, then file name.
    """
    wrong = ~predictions.column("correct").to_numpy(zero_copy_only=False)
    num_uncommon = predictions.column("num_uncommon").to_numpy()
    confidence = pc.list_element(predictions.column("top5_probs"), 0).to_numpy(zero_copy_only=False)
    names = np.asarray(predictions.column("file_name").to_pylist(), dtype=object)
    keep = np.flatnonzero(wrong & (num_uncommon > 0))
    order = keep[np.lexsort((names[keep], -confidence[keep], -num_uncommon[keep]))]
    return names[order[:max_images]].tolist()


def failures_from_run(run_dir: Path, name: str, max_images: int) -> list[str]:
    """select_failures on RUN_DIR/<model>/predictions.parquet, with a clear error when there is none to take."""
    path = runfolder.model_dir(run_dir, name) / runfolder.PREDICTIONS_FILE
    if not path.is_file():
        found = sorted(p.parent.name for p in Path(run_dir).glob(f"*/{runfolder.PREDICTIONS_FILE}"))
        raise FileNotFoundError(
            f"{path} does not exist: the run folder {run_dir} holds no finished predictions for {name!r} "
            f"(it has predictions for {found or 'no model'}). Run `focus-eval --data ... --models {name} "
            f"--output {run_dir}` first, or name the images with --images."
        )
    predictions = scoring.read_predictions(path)
    chosen = select_failures(predictions, max_images)
    if not chosen:
        wrong = int(pc.sum(pc.invert(predictions.column("correct"))).as_py() or 0)
        uncommon = int(pc.sum(pc.greater(predictions.column("num_uncommon"), 0)).as_py() or 0)
        raise ValueError(
            f"{path} holds no misclassified image with an uncommon attribute ({wrong} of {predictions.num_rows} "
            f"images are misclassified, {uncommon} have an uncommon attribute). Name the images with --images."
        )
    return chosen


def find_rows(annotations: pa.Table, file_names: list[str]) -> list[int]:
    """Row of each file name in the dataset; a leading "/" (the release's spelling) is accepted."""
    known = annotations.column("file_name").to_pylist()
    position = {file_name.lstrip("/"): i for i, file_name in enumerate(known)}
    unknown = [name for name in file_names if name.lstrip("/") not in position]
    if unknown:
        close = difflib.get_close_matches(unknown[0].lstrip("/"), list(position), n=3)
        raise ValueError(
            f"{len(unknown)} file name(s) not in the dataset: {unknown[:5]}. Close names: {close or '(none)'}. "
            f"File names are paths inside the release, e.g. {known[0]!r}; check --data and its filters."
        )
    return [position[name.lstrip("/")] for name in file_names]


# --------------------------------------------------------------------------------------------
# The target layer and the maps
# --------------------------------------------------------------------------------------------

def find_target_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """(dotted name, module) of the layer to explain: `name`, else the last convolutional stage.

    >>> import timm
    >>> [find_target_layer(timm.create_model(name))[0] for name in ("test_resnet", "test_efficientnet")]
    ['layer4', 'bn2']
    >>> from harness import models
    >>> find_target_layer(models.create_model("torchvision:resnet18", random_init=True)[0])[0]
    'model.layer4'
    >>> find_target_layer(models.create_model("torchvision:mobilenet_v3_small", random_init=True)[0])[0]
    'model.features'
    """
    if name is not None:
        try:
            return name, model.get_submodule(name)
        except AttributeError:
            modules = [n for n, _ in model.named_modules() if n]
            close = difflib.get_close_matches(name, modules, n=5, cutoff=0.5)
            raise ValueError(
                f"--target-layer {name!r} is not a module of {type(model).__name__}. Close names: "
                f"{close or '(none)'}; top-level modules: {[n for n, _ in model.named_children()]}. "
                f"Give a dotted path as in model.named_modules(), e.g. 'layer4' or 'blocks.5'."
            ) from None
    # A model from another library sits inside an adapter: search the network it wraps.
    prefix, network = next(((f"{attribute}.", getattr(model, attribute)) for kind, attribute in WRAPPED_NETWORKS
                            if isinstance(model, kind)), ("", model))
    for attribute, _ in TARGET_LAYER_CANDIDATES:
        if attribute == "bn2" and not hasattr(network, "conv_head"):
            continue
        if isinstance(getattr(network, attribute, None), nn.Module):
            return prefix + attribute, getattr(network, attribute)
    feature_info = getattr(network, "feature_info", None)
    if feature_info and isinstance(feature_info[-1], dict):
        name = feature_info[-1]["module"]
        return prefix + name, network.get_submodule(name)
    with_convolution = [(n, m) for n, m in network.named_children()
                        if any(isinstance(sub, nn.Conv2d) for sub in m.modules())]
    if not with_convolution:
        raise ValueError(f"{type(network).__name__} has no convolutional layer to explain; name one with "
                         f"--target-layer.")
    name, layer = with_convolution[-1]
    return prefix + name, layer


class GuidedActivation(nn.Module):
    """An activation whose backward pass lets only positive gradients through (guided backpropagation)."""

    def __init__(self, activation: nn.Module):
        super().__init__()
        self.activation = activation
        if hasattr(activation, "inplace"):
            activation.inplace = False  # the hook below needs the activation's own output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(x)
        if y.requires_grad:
            y.register_hook(lambda grad: grad.clamp(min=0))
        return y


def guided_model(model: nn.Module) -> GuidedBackpropReLUModel:
    """pytorch_grad_cam's guided backpropagation on a copy of `model`, its other activations guided too."""
    guided = copy.deepcopy(model)
    for parent in list(guided.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, GUIDED_ACTIVATIONS):
                setattr(parent, child_name, GuidedActivation(child))
    return GuidedBackpropReLUModel(guided)


def gradcam_maps(model: nn.Module, target_layer: nn.Module, inputs: torch.Tensor, targets: list[int], *,
                 aug_smooth: bool = True) -> np.ndarray:
    """Grad-CAM per image for the target classes: (batch, height, width) in [0, 1], the inputs' size.

    With `aug_smooth` (the authors' Figure 4), the package's test-time smoothing: the maps of the six
    inputs (as is and flipped horizontally, each times 0.9, 1.0 and 1.1), mapped back and averaged.
    """
    # Activations may be bf16 under autocast; the library reads them as numpy arrays.
    cam = GradCAM(model=model, target_layers=[target_layer], reshape_transform=lambda t: t.float())
    try:
        with torch.enable_grad():
            return cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(t)) for t in targets],
                       aug_smooth=aug_smooth)
    finally:
        cam.activations_and_grads.release()


def guided_backprop(guided: GuidedBackpropReLUModel, inputs: torch.Tensor, target: int) -> np.ndarray:
    """Guided backpropagation of one image (batch of 1) for the target class: (height, width, 3)."""
    with torch.enable_grad():
        return guided(inputs.detach().clone(), target_category=int(target))


def guided_gradcam(guided: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Guided Grad-CAM as an image: guided backpropagation times the Grad-CAM map, for display (uint8)."""
    return deprocess_image(guided * cam[..., None])


def spatial_output_shape(model: nn.Module, layer: nn.Module,
                         inputs: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The model's logits for `inputs` and the shape of `layer`'s output on them (the output's type's name
    when it is not a tensor, e.g. a transformers model's output object)."""
    shapes: list[tuple[int, ...] | str] = []
    handle = layer.register_forward_hook(lambda module, args, output: shapes.append(
        tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__))
    try:
        with torch.no_grad():
            logits = model(inputs)
    finally:
        handle.remove()
    return logits, shapes[-1]


# --------------------------------------------------------------------------------------------
# Panels and the index
# --------------------------------------------------------------------------------------------

def read_image(images: datasets.Dataset, annotations: pa.Table, row: int) -> PIL.Image.Image:
    """The RGB image at `row`; an OSError naming the file when it cannot be decoded."""
    try:
        return decode_image((images[row]["image"] or {}).get("bytes"))
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as err:
        file_name = annotations.column("file_name")[row].as_py()
        raise OSError(f"{file_name} cannot be decoded ({type(err).__name__}: {err}); leave it out of --images") from err


def image_record(annotation: dict[str, Any], rank: int, target: int, probability: float, cam: np.ndarray,
                 names: list[str]) -> dict[str, Any]:
    """What a panel shows, for gradcam.json: the image's classes, the prediction, the map's size and peak."""
    if len(names) == labels.NUM_IMAGENET_CLASSES:
        focus_id = int(labels.imagenet_to_focus_index()[target])
    else:  # a head in FOCUS's own label space (a CLIP zero-shot head, a head fine-tuned on FOCUS)
        focus_id = target if len(names) == len(schema.CLASS_NAMES) else -1
    return {
        "file_name": annotation["file_name"], "true_class": schema.CLASS_NAMES[annotation["label"]],
        "partition": schema.PARTITION_NAMES[annotation["partition"]],
        "num_uncommon": annotation["num_uncommon"], "predicted_id": target, "predicted_name": names[target],
        "predicted_probability": probability,
        "predicted_focus": schema.CLASS_NAMES[focus_id] if focus_id >= 0 else None,
        "map_size": list(cam.shape), "map_peak": [int(v) for v in np.unravel_index(cam.argmax(), cam.shape)],
        "panel": panel_file(rank, annotation["file_name"]),
    }


def panel_title(record: dict[str, Any]) -> str:
    focus = record["predicted_focus"] or "no FOCUS class"
    return (f"{record['file_name']}   true: {record['true_class']}\n"
            f"predicted: {record['predicted_name']} (ImageNet {record['predicted_id']}, "
            f"p={record['predicted_probability']:.2f}) → {focus}")


def plot_panel(original: np.ndarray, image: np.ndarray, cam: np.ndarray, guided: np.ndarray, title: str) -> Figure:
    """Figure 4's panel: the original image, then the Grad-CAM overlay and the Guided Grad-CAM map.

    `original` is the image as decoded (any size, shown with its aspect kept); `image` is the model's
    input in [0, 1] (height, width, 3), the size of `cam` and `guided`, which the overlay is drawn on.
    """
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    axes = figure.subplots(1, 3)
    for ax, picture, caption in zip(axes, (original, show_cam_on_image(image, cam, use_rgb=True), guided),
                                    ("original", "Grad-CAM (model input)", "Guided Grad-CAM")):
        ax.imshow(picture)
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    figure.suptitle(title, fontsize=9)
    return figure


def panel_file(rank: int, file_name: str) -> str:
    """NNN_<file name>.png, safe as a file name and short enough for any file system (a long name is cut and
    keeps a hash of itself, so that two long names stay apart).

    >>> panel_file(3, "/cat-snow/12.jpg"), len(panel_file(3, "x" * 300))
    ('003_cat-snow_12.png', 98)
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", file_name.strip("/")).rsplit(".", 1)[0]
    if len(stem) > _PANEL_STEM:
        digest = hashlib.sha256(file_name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        stem = f"{stem[:_PANEL_STEM - 11]}~{digest}"
    return f"{rank:03d}_{stem}.png"


_PANEL_STEM = 90  # characters of a panel's name from the image's: far below the 255 bytes file systems allow


def format_index(records: list[dict[str, Any]], header: dict[str, Any]) -> str:
    """index.html: every panel with its caption."""
    title = f"Grad-CAM failure maps: {header['model']}"
    rows = "\n".join(
        f'<figure><img src="{html.escape(r["panel"])}" alt="{html.escape(r["file_name"])}" width="900">'
        f"<figcaption>{html.escape(panel_title(r))}</figcaption></figure>" for r in records)
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>Weights: {html.escape(str(header['weights']))}. Target layer: {html.escape(header['target_layer'])}. "
            f"Target class: the model's top-1 prediction. {SMOOTHING[header['aug_smooth']]}. "
            f"Images: {html.escape(header['source'])}.</p>\n"
            f"{rows}\n</body></html>\n")


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

# What gradcam.json says of each panel (image_record's keys, in its order).
RECORD_SCHEMA = pa.schema([
    ("file_name", pa.string()), ("true_class", pa.string()), ("partition", pa.string()),
    ("num_uncommon", pa.int64()), ("predicted_id", pa.int64()), ("predicted_name", pa.string()),
    ("predicted_probability", pa.float64()), ("predicted_focus", pa.string()),
    ("map_size", pa.list_(pa.int64())), ("map_peak", pa.list_(pa.int64())), ("panel", pa.string()),
])


def gradcam_step(model: nn.Module, layer_name: str, layer: nn.Module, guided: GuidedBackpropReLUModel,
                 preprocessing: preprocess.Preprocessing, aug_smooth: bool, name: str, dataset: datasets.Dataset,
                 annotations: pa.Table) -> passes.Step:
    """The maps of a batch for the model's top-1 classes, the input images (uint8) to draw them on, and whether
    the logits and the maps are finite (checked in panel_rows)."""
    def step(batch: passes.Batch) -> dict[str, torch.Tensor]:
        broken = batch.indices[~batch.ok].tolist()
        if broken:
            file_name = annotations.column("file_name")[broken[0]].as_py()
            raise OSError(f"{file_name} cannot be decoded ({decode_error(dataset, broken[0])}); "
                          f"leave it out of --images")
        inputs = transforms.normalize(batch.images, preprocessing)
        logits, shape = spatial_output_shape(model, layer, inputs)
        if isinstance(shape, str) or len(shape) != 4:
            gives = f"a {shape}, not a tensor" if isinstance(shape, str) else f"shape {shape}"
            raise ValueError(f"Grad-CAM needs a spatial feature map (batch, channels, height, width); "
                             f"layer {layer_name!r} of {name} gives {gives}. Name a convolutional "
                             f"layer with --target-layer.")
        probabilities = logits.float().softmax(dim=1)
        targets = probabilities.argmax(dim=1)
        cams = gradcam_maps(model, layer, inputs, targets.tolist(), aug_smooth=aug_smooth)
        guided_maps = np.stack([guided_backprop(guided, inputs[i:i + 1], t) for i, t in enumerate(targets.tolist())])
        cams, guided_maps = torch.from_numpy(cams).to(inputs.device), torch.from_numpy(guided_maps).to(inputs.device)
        return {"target": targets, "probability": probabilities.gather(1, targets[:, None])[:, 0],
                "cam": cams, "guided": guided_maps, "image": batch.images,
                "finite_logits": passes.all_finite(logits),
                "finite_maps": passes.all_finite(cams) & passes.all_finite(guided_maps)}
    return step


def panel_rows(annotations: pa.Table, images: datasets.Dataset, rows: list[int], names: list[str],
               out_dir: Path, name: str) -> passes.ToRows:
    """Gathered maps as panels (drawn and saved here) and their records; logits or maps that are not finite are an
    error (passes.check_finite), never a blank panel."""
    rank = {row: r for r, row in enumerate(rows)}
    file_names = annotations.column("file_name").to_pylist()

    def to_rows(gathered: dict[str, np.ndarray]) -> pa.Table:
        passes.check_finite(gathered["finite_logits"], gathered, file_names, name, "logits")
        passes.check_finite(gathered["finite_maps"], gathered, file_names, name, "Grad-CAM maps")
        records = []
        for i, row in enumerate(gathered["index"].tolist()):
            cam, target = gathered["cam"][i], int(gathered["target"][i])
            record = image_record(annotations.slice(row, 1).to_pylist()[0], rank[row], target,
                                  float(gathered["probability"][i]), cam, names)
            original = read_image(images, annotations, row)
            # The model's input before normalisation, in [0, 1]: ToTensor's division, as the model saw it.
            image = gathered["image"][i].transpose(1, 2, 0).astype(np.float32) / np.float32(255)
            figure = plot_panel(np.asarray(original), image, cam, guided_gradcam(gathered["guided"][i], cam),
                                panel_title(record))
            runfolder.save_figure(figure, out_dir / record["panel"], dpi=100)
            records.append(record)
        return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)
    return to_rows


def explain_model(accelerator: Accelerator, target: AnalysisInput, name: str,
                  options: GradcamOptions) -> Path | None:
    """Panels for one model (maps computed across processes, drawn on the main one); index.html's path there.

    The model folder's lock is held throughout, as focus-eval and focus-probe hold it.
    """
    if options.run:
        file_names = failures_from_run(Path(options.run), name, options.max_images)
        source = f"misclassified with an uncommon attribute, from {options.run}"
    else:
        file_names = list(options.images[:options.max_images])
        source = "named on the command line"
    dataset, annotations = target.dataset, target.annotations
    rows = list(dict.fromkeys(find_rows(annotations, file_names)))  # an image named twice gets one panel
    model_dir = runfolder.model_dir(options.run_dir, name)
    with model_folder_lock(accelerator, model_dir, f"focus-gradcam of {name}"):
        # The run's weights and preprocessing when the images come from it (built on every process alike).
        model, info, preprocessing = run_shared(accelerator, lambda: prepare_model(
            name, options, target.run_configs.get(name)))
        layer_name, layer = find_target_layer(model, options.target_layer)
        model = model.to(accelerator.device)
        guided = guided_model(model)
        out_dir = model_dir / GRADCAM_DIR

        def start() -> None:
            out_dir.mkdir(parents=True, exist_ok=True)
            logger.info("%s: %d image(s), target layer %s, preprocessing %s", name, len(rows), layer_name,
                        preprocessing.summary())
        run_shared(accelerator, start, main_only=True)

        images = image_files(dataset)
        result = passes.run_pass(
            accelerator, dataset, rows, transforms.geometry_transform(preprocessing), preprocessing.input_size,
            gradcam_step(model, layer_name, layer, guided, preprocessing, options.aug_smooth, name, dataset,
                         annotations),
            panel_rows(annotations, images, rows, labels.class_names(model.num_classes), out_dir, name),
            schema=RECORD_SCHEMA, batch_size=options.batch_size, grad=True, desc=f"{name} Grad-CAM",
            quiet=options.quiet)

        def finish() -> Path:
            records = result.rows.to_pylist()
            header = {"model": info.model, "weights": info.weights, "random_init": info.random_init,
                      "target_layer": layer_name, "aug_smooth": options.aug_smooth,
                      "input_size": list(preprocessing.input_size), "preprocessing": preprocessing.to_dict(),
                      "source": source, "precision": options.precision, "date": now()}
            runfolder.write_json(out_dir / RECORDS_FILE, {**header, "images": records})
            runfolder.write_text(out_dir / INDEX_FILE, format_index(records, header))
            logger.info("%s: %d panel(s) in %s", name, len(records), out_dir)
            return out_dir / INDEX_FILE
        return run_shared(accelerator, finish, main_only=True)


def explain_models(data: str | Path | None, models: Sequence[str],
                   options: GradcamOptions = GradcamOptions()) -> dict[str, Path | None]:
    """Grad-CAM panels of `models` (with options.run: the run's, or those of `models` among them) on the images of
    options.images, or with options.run the run's misclassified uncommon ones; each model's index.html."""
    if options.max_images < 1:
        raise ValueError(f"--max-images must be a positive number of images, got {options.max_images}")
    with accelerator_for(options.precision, cpu=options.cpu) as accelerator:
        target = analysis_input(None if data is None else str(data), options.selection, models, options,
                                run=options.run, selection_given=options.selection_given, cache_dir=options.cache_dir,
                                output=options.run_dir)
        indexes = for_each_model(target.names, lambda name: explain_model(accelerator, target, name, options))
        return dict(zip(target.names, indexes))
