"""Every new builder through the pipeline as `make all` runs it (tftool-train, tftool-quantize
where tfmot allows it, skipped with a line where it does not, tftool-export, tftool-benchmark)
on a generated 32x32 RGB folder at a tiny size, in-process."""
import json
import os

import numpy as np
import pytest

from inprocess import run_main

# (model flags, QAT possible): the smallest settings of each builder
BUILDERS = [
    (["--model=resnet8", "--width=4"], True),
    (["--model=airbench", "--width=4"], True),
    (["--model=mobilenet_v3_small", "--alpha=0.35"], False),  # hard-swish: no QAT
    (["--model=mobilenet_v3_large", "--alpha=0.35", "--minimalistic"], True),
    (["--model=efficientnet_lite0"], True),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, digits):
    """digits upscaled to 32x32 RGB PNGs, 60 train and 20 test images over 10 classes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("rgb32")
    for split, ds, count in (("train", digits.train, 60), ("test", digits.test, 20)):
        for i, (image, label) in enumerate(ds.take(count).as_numpy_iterator()):
            big = np.kron(image[..., 0], np.ones((4, 4), np.uint8))
            path = root / split / f"digit_{label}"
            path.mkdir(parents=True, exist_ok=True)
            Image.fromarray(big, mode="L").convert("RGB").save(path / f"{i}.png")
    return str(root)


@pytest.mark.parametrize("model_flags,qat", BUILDERS, ids=lambda v: str(v))
def test_the_pipeline_runs_what_it_can_for_each_builder(folder, tmp_path, monkeypatch,
                                                        model_flags, qat):
    monkeypatch.setenv("TFTOOL_SHARED_FLAGS", "1")  # as under make: skip what tfmot cannot
    work = [f"--workdir={tmp_path}/w"]
    result = run_main("train", *work, f"--dataset=folder:{folder}", *model_flags,
                      "--epochs=1", "--per_replica_batch_size=16", "--allow_chance_accuracy")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_main("quantize", *work, "--epochs=1", "--per_replica_batch_size=16",
                      "--allow_chance_accuracy")
    assert result.returncode == 0, result.stderr[-3000:]
    skipped = "tftool-quantize: skipped: tfmot cannot quantize" in result.stdout
    assert skipped == (not qat), result.stdout
    assert os.path.isfile(f"{tmp_path}/w/qat/model.h5") == qat
    variants = "int8,qat_int8" if qat else "int8"
    result = run_main("export", *work, f"--export_dir={tmp_path}/e", f"--variants={variants}",
                      "--max_accuracy_drop=1", "--allow_chance_accuracy", "--noselective_int8",
                      "--noquantization_debugger")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_main("benchmark", *work, f"--export_dir={tmp_path}/e", "--threads=1",
                      "--batch_sizes=1", "--xnnpack=on", "--min_runs=5", "--min_seconds=0",
                      "--warmup_seconds=0")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.load(open(f"{tmp_path}/e/benchmark.json"))
    assert {r["variant"] for r in rows if r["format"] == "tflite"} == set(variants.split(","))
    for r in rows:
        assert r["latency_ms_p50"] > 0 and 0 <= r["accuracy"] <= 1
    name = os.path.basename(folder) + "_" + model_flags[0].split("=")[1]
    card = json.load(open(f"{tmp_path}/e/{name}_int8.json"))
    assert card["input"]["dtype"] == "uint8" and card["input"]["shape"] == [1, 32, 32, 3]
