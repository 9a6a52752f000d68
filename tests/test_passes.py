"""harness/passes.py: one pass over the data with a trivial step, resumed from parts, errors on every process."""

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pyarrow as pa
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from harness import artifacts, distributed, passes

REPO = Path(__file__).resolve().parents[1]
SIZE = 8
SCHEMA = pa.schema([("file_name", pa.string()), ("ok", pa.bool_()), ("mean", pa.float64())])


def tiny_dataset(num_images=7, broken=()):
    """Images of one grey level each (10, 20, ...), as PNG bytes; rows in `broken` are not images."""
    images = []
    for i in range(num_images):
        buffer = io.BytesIO()
        PIL.Image.new("RGB", (SIZE + i, SIZE), (10 * (i + 1),) * 3).save(buffer, format="PNG")
        images.append({"bytes": b"no image" if i in broken else buffer.getvalue(), "path": None})
    features = datasets.Features({"file_name": datasets.Value("string"), "image": datasets.Image()})
    return datasets.Dataset.from_dict({"file_name": [f"{i}.png" for i in range(num_images)], "image": images},
                                      features=features)


def crop(image):
    """The geometry: a fixed-size crop as a uint8 (3, SIZE, SIZE) tensor."""
    return torch.from_numpy(np.array(image)[:SIZE, :SIZE]).permute(2, 0, 1).contiguous()


def mean_step(batch):
    assert batch.images.dtype == torch.uint8 and not torch.is_grad_enabled()
    return {"mean": batch.images.double().mean(dim=(1, 2, 3))}


def rows_of(dataset):
    file_names = dataset["file_name"]
    return lambda gathered: pa.table({"file_name": [file_names[i] for i in gathered["index"]], "ok": gathered["ok"],
                                      "mean": gathered["mean"]}, schema=SCHEMA)


@pytest.fixture
def accelerator():
    accelerator = Accelerator(cpu=True)
    yield accelerator
    AcceleratorState._reset_state()


def run(accelerator, dataset, rows, **options):
    return passes.run_pass(accelerator, dataset, rows, crop, (3, SIZE, SIZE), mean_step, rows_of(dataset),
                           schema=SCHEMA, batch_size=3, quiet=True, **options)


def test_a_trivial_step_gives_one_row_per_image_in_order(accelerator):
    dataset = tiny_dataset()
    result = run(accelerator, dataset, [5, 0, 3])
    assert result.rows.column("file_name").to_pylist() == ["5.png", "0.png", "3.png"]
    assert result.rows.column("mean").to_pylist() == [60.0, 10.0, 40.0]
    assert result.num_images == 3 and result.images_per_second > 0


def test_an_image_that_cannot_be_decoded_comes_as_zeros_not_ok(accelerator):
    result = run(accelerator, tiny_dataset(broken={1}), range(3))
    assert result.rows.column("ok").to_pylist() == [True, False, True]
    assert result.rows.column("mean").to_pylist() == [10.0, 0.0, 30.0]


def test_rows_go_to_parts_as_they_come_and_a_second_pass_has_nothing_left(accelerator, tmp_path):
    dataset = tiny_dataset()
    parts = tmp_path / "parts"
    first = run(accelerator, dataset, range(4), parts_dir=parts, save_every=2)
    assert len(list(parts.glob("part-*.parquet"))) == 2 and first.rows.num_rows == 4
    pending = artifacts.pending_rows(dataset["file_name"], parts, SCHEMA)
    assert pending == [4, 5, 6]
    second = run(accelerator, dataset, pending, parts_dir=parts, save_every=2)
    assert second.num_images == 3 and second.rows.column("mean").to_pylist() == [10.0 * i for i in range(1, 8)]
    assert artifacts.pending_rows(dataset["file_name"], parts, SCHEMA) == []
    nothing = run(accelerator, dataset, [], parts_dir=parts)
    assert nothing.num_images == 0 and nothing.rows.num_rows == 7 and nothing.images_per_second is None


def test_without_parts_the_rows_are_kept_in_memory(accelerator, tmp_path):
    result = run(accelerator, tiny_dataset(), range(7))
    assert result.rows.num_rows == 7 and not list(tmp_path.iterdir())
    assert run(accelerator, tiny_dataset(), []).rows.num_rows == 0


def test_errors_in_the_step_and_in_the_rows_reach_the_caller(accelerator):
    def failing_step(batch):
        raise ValueError("the model cannot take this batch")

    with pytest.raises(ValueError, match="the model cannot take this batch"):
        passes.run_pass(accelerator, tiny_dataset(), range(7), crop, (3, SIZE, SIZE), failing_step,
                        rows_of(tiny_dataset()), schema=SCHEMA, quiet=True)

    def failing_rows(gathered):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        passes.run_pass(accelerator, tiny_dataset(), range(7), crop, (3, SIZE, SIZE), mean_step, failing_rows,
                        schema=SCHEMA, batch_size=3, quiet=True)


def test_non_finite_outputs_of_decoded_images_name_the_model_the_first_image_and_what():
    outputs = torch.tensor([[1.0, 2.0], [float("nan"), 0.0], [0.0, float("inf")], [float("nan"), 1.0]])
    finite = passes.all_finite(outputs).numpy()
    assert finite.tolist() == [True, False, False, False]
    gathered = {"index": np.array([4, 2, 0, 1]), "ok": np.array([True, False, True, True])}
    with pytest.raises(ValueError, match=r"^m gave non-finite features \(NaN or infinity\) for 2 image\(s\) of a "
                                         r"batch, the first 0.png: its weights are broken, or the precision overflows"):
        passes.check_finite(finite, gathered, [f"{i}.png" for i in range(5)], "m", "features")
    # An image that could not be decoded (zeros, not ok) is not the model's fault.
    passes.check_finite(np.array([True, False]), {"index": np.array([0, 1]), "ok": np.array([True, False])},
                        ["0.png", "1.png"], "m", "logits")


def test_parts_that_do_not_merge_say_resume_when_images_are_missing_and_no_resume_when_strangers_are_there(
        tmp_path):
    from harness.evaluation import PART_SCHEMA

    assert artifacts.rerun_advice(3, 4) == "rerun to resume"
    assert artifacts.rerun_advice(5, 4) == "rerun with --no-resume"
    parts = pa.table({field.name: pa.nulls(3, field.type) for field in PART_SCHEMA}, schema=PART_SCHEMA)
    parts = parts.set_column(0, "file_name", pa.array(["a.jpg", "b.jpg", "c.jpg"]))
    with pytest.raises(RuntimeError, match=r": predictions for 3 of 4 images; rerun to resume$"):
        artifacts.merged(parts, tmp_path, 4, what="predictions")
    with pytest.raises(RuntimeError, match=r": predictions for 3 of 2 images; rerun with --no-resume$"):
        artifacts.merged(parts, tmp_path, 2, what="predictions")
    assert artifacts.merged(parts, tmp_path, 3, what="predictions").num_rows == 3


def test_an_image_twice_in_the_parts_is_an_error_naming_it_and_the_folder(tmp_path):
    parts = pa.table({"file_name": ["b.jpg", "a.jpg", "b.jpg"]})
    with pytest.raises(RuntimeError, match=rf"^{tmp_path}: 1 image\(s\) have features twice or more in its part "
                                           rf"files, e.g. \['b.jpg'\]; rerun with --no-resume$"):
        artifacts.merged(parts, tmp_path, 2, what="features")


def test_an_error_on_another_process_stops_this_one(accelerator, monkeypatch):
    # gather_object as in a two-process run whose other process failed in its step.
    monkeypatch.setattr(distributed, "gather_object", lambda objects: [*objects, RuntimeError("out of memory on process 1")])
    with pytest.raises(RuntimeError, match="out of memory on process 1"):
        run(accelerator, tiny_dataset(), range(7))


def test_grad_lets_the_step_choose_where_gradients_flow(accelerator):
    def step(batch):
        weight = torch.ones(1, requires_grad=True)
        with torch.enable_grad():
            (batch.images.float() * weight).sum().backward()
        return {"mean": weight.grad.expand(len(batch.indices)).double()}

    result = passes.run_pass(accelerator, tiny_dataset(), range(2), crop, (3, SIZE, SIZE), step,
                             rows_of(tiny_dataset()), schema=SCHEMA, grad=True, quiet=True)
    assert result.rows.column("mean").to_pylist() == [3 * SIZE * SIZE * 10.0 + 3 * SIZE * SIZE * 20.0] * 2


# A script for two processes: a pass whose step fails on one process only ("step"), or whose merge fails
# on the main process after the loop ("merge": the parts folder is a file).
TWO_PROCESS_SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    from pathlib import Path
    from accelerate import Accelerator
    import test_passes as t
    from focus_common.commands import COMMAND_ERRORS
    from harness import passes

    mode, parts = sys.argv[1], Path(sys.argv[2])
    accelerator = Accelerator(cpu=True)
    dataset = t.tiny_dataset()

    def step(batch):
        if mode == "step" and accelerator.process_index == 1:
            raise ValueError("the step failed on process 1")
        return t.mean_step(batch)

    try:
        passes.run_pass(accelerator, dataset, range(7), t.crop, (3, t.SIZE, t.SIZE), step, t.rows_of(dataset),
                        schema=t.SCHEMA, parts_dir=parts, save_every=100, batch_size=2, quiet=True)
    except COMMAND_ERRORS as err:
        print(f"error: {{err}}", file=sys.stderr)
        code = 2
    else:
        code = 0
    finally:
        # As the commands do (distributed.accelerator_for): leave the process group before exiting, or gloo
        # may abort at exit once the other process is gone.
        accelerator.end_training()
    sys.exit(code)
""")


@pytest.mark.slow
@pytest.mark.parametrize("mode, message", [("step", "error: the step failed on process 1"),
                                           ("merge", "error: [Errno 17] File exists")])
def test_an_error_on_one_process_ends_every_process_with_exit_2(tmp_path, mode, message):
    script = tmp_path / "two_processes.py"
    script.write_text(TWO_PROCESS_SCRIPT.format(repo=str(REPO), tests=str(REPO / "tests")))
    parts = tmp_path / "parts"
    parts.write_text("a file where the parts folder should be")  # fails on the main process, after the loop
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), mode, str(parts)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode != 0, result.stderr[-3000:]
    # Each process says why it stops (torchrun may end the second one once the first has exited with 2).
    assert result.stderr.count(message) == 2, result.stderr[-3000:]
    assert "exitcode  : 2" in result.stderr
    assert 'two_processes.py", line' not in result.stderr  # a message, not a traceback


def test_images_per_second_leaves_out_the_first_batch_unless_it_was_the_only_one():
    from harness.passes import PassResult

    assert PassResult(None, 100, 10.0, 10, 5.0).images_per_second == 18.0  # 90 images in the 5 s after warm-up
    assert PassResult(None, 10, 2.0, 10, 2.0).images_per_second == 5.0  # one batch: the whole loop's rate
    assert PassResult(None, 0, 0.0).images_per_second is None
