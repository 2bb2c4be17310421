"""export/micro.py on a small_cnn (width 8) trained on digits in-process: C array compiled with
g++, op resolver header content, arena measured with TFLM, TFLM agreeing with LiteRT."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tftool import UserError, data, models
from tftool.export import convert, micro

IMAGE_SIZE = (8, 8)
# What small_cnn on 8x8 inputs becomes in TFLite (BN folded into the convs, ReLU fused, global
# average pooling as MEAN), and the TFLM methods that register those ops, written out by hand
# from tensorflow/lite/micro/micro_mutable_op_resolver.h rather than taken from micro.TFLM_OPS.
SMALL_CNN_OPS = ["CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "MEAN"]
SMALL_CNN_ADDS = {"AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddMean"}
GXX = shutil.which("g++")


@pytest.fixture(scope="module")
def trained(digits):
    """(float small_cnn, test images float32 [359, 8, 8, 1] in [0, 1], labels int64 [359])."""
    keras.utils.set_random_seed(0)
    model = models.build("small_cnn", IMAGE_SIZE + (1,), digits.num_classes, width=8)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    train = data.pipeline(digits.train, IMAGE_SIZE, 32, training=True, seed=0)
    model.fit(train, epochs=5, verbose=0)  # ~8 s on 2 cores; test accuracy ~0.97
    images, labels = data.test_arrays(digits, IMAGE_SIZE)
    assert model.evaluate(images, labels, verbose=0)[1] >= 0.9
    return model, images, labels


@pytest.fixture(scope="module")
def int8_model(trained, digits):
    """Full-integer int8 .tflite bytes (int8 input and output, 1 channel)."""
    model, _, _ = trained
    from tftool.export import variants
    return convert.to_tflite(model, "int8", **variants.micro_conversion(
        data.representative_dataset(digits, IMAGE_SIZE)))


def test_ops_and_op_resolver_header(int8_model, tmp_path):
    assert micro.ops(int8_model) == SMALL_CNN_OPS
    header = micro.op_resolver_header(int8_model, "digits_int8")
    adds = re.findall(r"resolver\.(Add\w+)\(\)", header)
    assert sorted(adds) == sorted(SMALL_CNN_ADDS)  # each op once, nothing else
    assert "typedef tflite::MicroMutableOpResolver<4> digits_int8_op_resolver;" in header
    assert '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"' in header
    if GXX is None:
        pytest.skip("g++ not installed")
    # No TFLM headers here: compile against a stand-in that has only the four methods the
    # model needs, so a misspelt or extra Add call, or broken C++, fails to compile.
    stub_dir = tmp_path / "tensorflow" / "lite" / "micro"
    stub_dir.mkdir(parents=True)
    methods = "\n".join(f"  TfLiteStatus {m}() {{ ++added; return kTfLiteOk; }}"
                        for m in sorted(SMALL_CNN_ADDS))
    (stub_dir / "micro_mutable_op_resolver.h").write_text(
        "#pragma once\nenum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };\n"
        "namespace tflite {\ntemplate <unsigned int tOpCount> class MicroMutableOpResolver {\n"
        f" public:\n  static constexpr unsigned int kCount = tOpCount;\n  int added = 0;\n"
        f"{methods}\n}};\n}}  // namespace tflite\n")
    (tmp_path / "digits_int8_op_resolver.h").write_text(header)
    (tmp_path / "main.cc").write_text(
        '#include <cstdio>\n#include "digits_int8_op_resolver.h"\n'
        "int main() {\n  digits_int8_op_resolver r;\n"
        "  TfLiteStatus s = digits_int8_register_ops(r);\n"
        '  std::printf("%d %d %u\\n", (int)s, r.added, digits_int8_op_resolver::kCount);\n}\n')
    _build_and_run(tmp_path, ["main.cc"], expect="0 4 4")


def test_c_array_compiles_with_the_model_bytes(int8_model, tmp_path):
    header, source = micro.c_source(int8_model, "digits_int8")
    assert "#ifndef TFTOOL_DIGITS_INT8_MODEL_DATA_H_" in header
    assert "alignas(16) const unsigned char digits_int8_model_data[]" in source
    if GXX is None:
        pytest.skip("g++ not installed")
    (tmp_path / "digits_int8_model_data.h").write_text(header)
    (tmp_path / "digits_int8_model_data.cc").write_text(source)
    subprocess.run([GXX, "-std=c++17", "-Wall", "-Werror", "-c", "digits_int8_model_data.cc"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    # A separate translation unit sees the array through the header only (external linkage),
    # prints its length and alignment and writes its bytes back for an exact comparison.
    (tmp_path / "main.cc").write_text(
        "#include <cstdint>\n#include <cstdio>\n#include \"digits_int8_model_data.h\"\n"
        "int main() {\n"
        "  std::FILE* f = std::fopen(\"roundtrip.tflite\", \"wb\");\n"
        "  std::fwrite(digits_int8_model_data, 1, digits_int8_model_data_len, f);\n"
        "  std::fclose(f);\n"
        "  std::printf(\"%u %d\\n\", digits_int8_model_data_len,\n"
        "              (int)(reinterpret_cast<std::uintptr_t>(digits_int8_model_data) % 16));\n"
        "}\n")
    _build_and_run(tmp_path, ["main.cc", "digits_int8_model_data.o"],
                   expect=f"{len(int8_model)} 0")
    assert (tmp_path / "roundtrip.tflite").read_bytes() == int8_model


def _build_and_run(directory, sources, expect):
    build = subprocess.run([GXX, "-std=c++17", "-Wall", "-Werror", "-I.", *sources, "-o", "main"],
                           cwd=directory, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([os.path.join(directory, "main")], cwd=directory, capture_output=True,
                         text=True, timeout=60, check=True)
    assert run.stdout.strip() == expect


def test_smallest_arena_works_and_less_fails(int8_model):
    smallest = micro.smallest_arena(int8_model)
    used = micro.arena_used_bytes(int8_model, smallest)  # runs with exactly `smallest`
    assert 0 < used <= smallest
    for too_small in (smallest - 1, smallest // 2):
        with pytest.raises(UserError, match=f"{too_small}-byte arena"):
            micro.arena_used_bytes(int8_model, too_small)
    shipped = micro.arena_with_margin(smallest)
    assert shipped % 1024 == 0 and shipped >= 1.1 * smallest
    assert micro.arena_used_bytes(int8_model, shipped) == used  # same plan, any larger arena


def test_footprint_and_budget_message(int8_model):
    row = micro.footprint(int8_model, micro_flash_kb=None, micro_ram_kb=None, name="digits_int8")
    assert row["flash_bytes"] == len(int8_model)
    assert row["arena_bytes"] == micro.arena_with_margin(row["arena_smallest_bytes"])
    assert row["arena_used_bytes"] <= row["arena_smallest_bytes"] < row["arena_bytes"]
    assert row["ops"] == SMALL_CNN_OPS and row["fits"] and row["message"] is None
    roomy = micro.footprint(int8_model, micro_flash_kb=256, micro_ram_kb=64)
    assert roomy["fits"] and roomy["message"] is None
    tight = micro.footprint(int8_model, micro_flash_kb=4, micro_ram_kb=2, name="digits_int8")
    assert not tight["fits"]
    message = tight["message"]
    assert "\n" not in message and message.startswith("digits_int8 does not fit")
    assert f"model {len(int8_model) / 1024:.1f} KiB > flash budget 4 KiB" in message
    assert f"{row['arena_bytes'] / 1024:.1f} KiB" in message and "RAM budget 2 KiB" in message


def test_tflm_agrees_with_litert_on_the_test_split(int8_model, trained):
    _, images, labels = trained
    result = micro.compare_with_litert(int8_model, images, labels)
    assert result["num_images"] == len(labels) == 359
    assert result["top1_agreement"] >= 0.999
    assert result["max_abs_diff_steps"] <= 1
    assert result["tflm_accuracy"] >= 0.9 and result["litert_accuracy"] >= 0.9
    # Already-quantized int8 images, streamed in batches, give the same answer.
    runner_scale, zero_point = _input_quantization(int8_model)
    q = np.clip(np.round(images / runner_scale + zero_point), -128, 127).astype(np.int8)
    streamed = micro.compare_with_litert(int8_model, (q[i:i + 100] for i in range(0, 359, 100)),
                                         labels)
    assert streamed == result


def test_uint8_io_model(trained, digits):
    """Exports with uint8 input and output (what convert.py is moving to) work the same."""
    model, images, labels = trained
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = data.representative_dataset(digits, IMAGE_SIZE)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    content = converter.convert()
    assert "QUANTIZE" in micro.ops(content)  # uint8 <-> int8 at the edges
    header = micro.op_resolver_header(content, "digits_uint8")
    assert "AddQuantize()" in header and "MicroMutableOpResolver<5>" in header
    result = micro.compare_with_litert(content, images, labels)
    assert result["top1_agreement"] >= 0.999 and result["max_abs_diff_steps"] <= 1
    assert result["tflm_accuracy"] >= 0.9


def _input_quantization(content):
    from tftool.litert import Runner
    return Runner(model_content=content).input_details["quantization"]


def _with_opcode(content, builtin, custom_code=None):
    """The model with its first operator code replaced (a model TFLM cannot run)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.convert_bytearray_to_object(content)
    code = getattr(fb.BuiltinOperator, builtin)
    opcode = model.operatorCodes[0]
    opcode.builtinCode = code
    opcode.deprecatedBuiltinCode = min(code, 127)
    opcode.customCode = custom_code
    return bytes(fb.convert_object_to_bytearray(model))


def test_ops_tflm_lacks_are_named(int8_model):
    no_kernel = _with_opcode(int8_model, "ATAN2")
    for fn in (micro.ops, lambda b: micro.op_resolver_header(b, "m"), micro.smallest_arena):
        with pytest.raises(UserError, match="no kernel for ATAN2"):
            fn(no_kernel)
    with pytest.raises(UserError, match="custom op 'MyOp'"):
        micro.ops(_with_opcode(int8_model, "CUSTOM", custom_code="MyOp"))


def test_bad_arguments(int8_model):
    with pytest.raises(ValueError, match="C identifier"):
        micro.c_source(int8_model, "digits-int8")
    with pytest.raises(ValueError, match="C identifier"):
        micro.op_resolver_header(int8_model, "8bit")
    with pytest.raises(UserError, match="not a .tflite model"):
        micro.c_source(b"not a flatbuffer at all", "m")
    with pytest.raises(ValueError, match="micro_ram_kb=-1"):
        micro.footprint(int8_model, micro_ram_kb=-1)
    assert micro.arena_with_margin(3984) == 5120  # 3984 * 1.1 = 4382.4 -> 5 KiB
    assert micro.arena_with_margin(1000, margin=0.0) == 1024
