"""export/micro/ on a small_cnn (width 8) trained on digits in-process: C array compiled with
g++, op resolver header content, arena measured with TFLM, TFLM agreeing with LiteRT; the
header's and the card's input/output description checked against the flatbuffer decoded back
from the .cc file, and used alone to feed TFLM (digits 8x8, and a 28x28 grayscale folder)."""
import json
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
    from tftool.export import micro_export
    return convert.to_tflite(model, "int8", **micro_export.micro_conversion(
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
    # Class names a C string literal must escape: quote, backslash, '?' (trigraph), UTF-8.
    labels = ['say "hi"', "back\\slash", "??=", "café", "2", "3", "4", "5", "6", "7"]
    header, source = micro.c_source(int8_model, "digits_int8", labels=labels)
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
        "  std::FILE* l = std::fopen(\"labels.txt\", \"wb\");\n"
        "  for (int i = 0; i < digits_int8_num_classes; ++i)\n"
        "    std::fprintf(l, \"%s\\n\", digits_int8_labels[i]);\n"
        "  std::fclose(l);\n"
        "  digits_int8_input_t in = static_cast<digits_int8_input_t>(\n"
        "      255 + digits_int8_input_zero_point);  // the brightest pixel, q = pixel - 128\n"
        "  std::FILE* c = std::fopen(\"constants.txt\", \"w\");\n"
        "  std::fprintf(c, \"%s %d %d %d %d %.9g %d %d %s %d %d %.9g %d\\n\",\n"
        "      digits_int8_input_dtype, digits_int8_input_height, digits_int8_input_width,\n"
        "      digits_int8_input_channels, digits_int8_input_bytes,\n"
        "      (double)digits_int8_input_scale, (int)in, (int)sizeof(digits_int8_input_t),\n"
        "      digits_int8_output_kind, (int)digits_int8_output_is_probabilities,\n"
        "      digits_int8_num_classes, (double)digits_int8_output_scale,\n"
        "      digits_int8_output_zero_point);\n"
        "  std::fclose(c);\n"
        "}\n")
    _build_and_run(tmp_path, ["main.cc", "digits_int8_model_data.o"],
                   expect=f"{len(int8_model)} 0")
    assert (tmp_path / "roundtrip.tflite").read_bytes() == int8_model
    assert (tmp_path / "labels.txt").read_text("utf-8").splitlines() == labels
    # What the compiled constants hold is what the flatbuffer says (io_details is checked
    # against the LiteRT interpreter in test_header_and_card_describe_the_decoded_model).
    out = micro.io_details(int8_model)["output"]
    assert (tmp_path / "constants.txt").read_text().split() == [
        "int8", "8", "8", "1", "64", f"{np.float32(1 / 255):.9g}", "127", "1", "logits", "0",
        "10", f"{np.float32(out['scale']):.9g}", str(out["zero_point"])]


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
    # The header and card describe it as uint8 q = pixel, logits behind the output QUANTIZE.
    header, source = micro.c_source(content, "digits_uint8", labels=digits.class_names)
    section = micro.card_section(content, digits.class_names)
    _check_description(header, source, "digits_uint8", digits.class_names, section)
    assert _pixel_formula(header) == "q = pixel" == section["input"]["formula"]
    assert section["output"]["kind"] == "logits"
    assert section["output"]["last_op"] == "FULLY_CONNECTED"  # QUANTIZE after it skipped


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
    with pytest.raises(ValueError, match="3 labels for a model with 10 outputs"):
        micro.c_source(int8_model, "m", labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="3 labels for a model with 10 outputs"):
        micro.card_section(int8_model, ["a", "b", "c"])


def test_pixel_formula():
    third = float(np.float32(1 / 255))
    assert micro.pixel_formula("uint8", third, 0) == "q = pixel"
    assert micro.pixel_formula("int8", third, -128) == "q = pixel - 128"
    assert micro.pixel_formula("int8", third, 0) == "q = pixel, clamped to -128..127"
    assert micro.pixel_formula("int16", third, 5) == "q = pixel + 5"
    assert micro.pixel_formula("int8", 1 / 127.5, -1) == (
        "q = round(pixel / 255 / 0.007843138) - 1, clamped to -128..127")  # float32 digits
    assert micro.pixel_formula("float32", 0.0, 0) == "x = pixel / 255.0"
    with pytest.raises(ValueError, match="scale > 0"):
        micro.pixel_formula("int8", 0.0, -128)


def test_several_outputs_are_not_described(int8_model):
    """A model with two outputs: the C array is still written, its header says the I/O is
    not described (no constants that would describe only one of them)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.convert_bytearray_to_object(int8_model)
    subgraph = model.subgraphs[0]
    subgraph.outputs = np.append(subgraph.outputs, subgraph.inputs[0]).astype(np.int32)
    content = bytes(fb.convert_object_to_bytearray(model))
    header, source = micro.c_source(content, "two")
    assert "// 1 input and 2 outputs: tftool describes" in header
    assert "two_input_scale" not in header and "#include <cstdint>" not in header
    assert _decode_c_array(source, "two") == content
    with pytest.raises(UserError, match="1 input and 2 outputs"):
        micro.io_details(content)
    with pytest.raises(ValueError, match="labels given for a model with 2 outputs"):
        micro.c_source(content, "two", labels=[str(i) for i in range(10)])
    assert micro.arena_with_margin(1000, margin=0.0) == 1024


# --- The micro file's input/output, as the header and the card say (issue: the card's top
# describes the app's .tflite, uint8 q = pixel and float32 probabilities; the C array holds
# another flatbuffer, int8 q = pixel - 128 and int8 logits). ---

# numpy dtype name -> the C++ type the header's <name>_input_t / _output_t must be.
C_TYPES = {"int8": "std::int8_t", "uint8": "std::uint8_t", "int16": "std::int16_t",
           "float32": "float"}
_CONSTANT = re.compile(r"^constexpr (float|int|bool|char|unsigned int) (\w+?)(\[\])? = (.+);$",
                       re.M)


def _decode_c_array(source, name):
    """The bytes of `<name>_model_data[]` parsed back from the .cc text (checked against
    <name>_model_data_len there)."""
    body = re.search(rf"{name}_model_data\[\] = \{{(.*?)\}};", source, re.S).group(1)
    decoded = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    length = re.search(rf"const unsigned int {name}_model_data_len = (\d+);", source)
    assert int(length.group(1)) == len(decoded)
    return decoded


def _header_constants(header):
    """{C name: value} of every `constexpr` and `typedef` in the header text: float32 for a
    float, int / bool, str for a char[] string, [int] for an int[] array, the C type for a
    typedef."""
    values = {}
    for ctype, name, array, value in _CONSTANT.findall(header):
        if ctype == "char":
            values[name] = json.loads(value)
        elif array:
            values[name] = [int(v) for v in value.strip("{}").split(",")]
        elif ctype == "float":
            assert value.endswith("f"), value
            values[name] = np.float32(float(value[:-1]))
        elif ctype == "bool":
            values[name] = {"true": True, "false": False}[value]
        else:
            values[name] = int(value)
    for ctype, name in re.findall(r"^typedef (.+) (\w+);$", header, re.M):
        values[name] = ctype
    return values


def _c_labels(source, name):
    """The class names defined in the .cc (`<name>_labels[]`), C escapes decoded."""
    body = re.search(rf"{name}_labels\[{name}_num_classes\] = \{{\n(.*?)\n\}};", source,
                     re.S).group(1)
    labels = []
    for literal in re.findall(r'^    "(.*)",$', body, re.M):
        raw = re.sub(rb"\\([0-7]{3}|.)",
                     lambda m: bytes([int(m.group(1), 8)]) if len(m.group(1)) == 3
                     else m.group(1), literal.encode("ascii"))
        labels.append(raw.decode("utf-8"))
    return labels


def _pixel_formula(header):
    """The formula the header's comment gives for an 8-bit pixel, e.g. "q = pixel - 128"."""
    return re.search(r"^// From an 8-bit camera pixel \(0\.\.255\): (.+)$", header,
                     re.M).group(1)


def _check_description(header, source, name, labels, card_micro=None):
    """Every header constant and card "micro" input/output field == the decoded model's
    LiteRT interpreter details and graph. Returns (decoded bytes, header constants)."""
    from ai_edge_litert.interpreter import Interpreter

    decoded = _decode_c_array(source, name)
    c = _header_constants(header)
    interpreter = Interpreter(model_content=decoded)
    interpreter.allocate_tensors()
    [inp], [out] = interpreter.get_input_details(), interpreter.get_output_details()
    in_dtype, out_dtype = np.dtype(inp["dtype"]).name, np.dtype(out["dtype"]).name
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    shape = [int(d) for d in inp["shape"]]
    # The op writing the output, independently of export/micro/: the LiteRT interpreter's ops.
    producers = {int(t): op["op_name"] for op in interpreter._get_ops_details()
                 for t in op["outputs"]}
    probabilities = producers[int(out["index"])] == "SOFTMAX"

    assert c[f"{name}_input_dtype"] == in_dtype and c[f"{name}_input_t"] == C_TYPES[in_dtype]
    assert c[f"{name}_input_shape"] == shape
    assert [c[f"{name}_input_{d}"] for d in ("batch", "height", "width", "channels")] == shape
    assert c[f"{name}_input_bytes"] == int(np.prod(shape)) * np.dtype(in_dtype).itemsize
    assert c[f"{name}_input_scale"] == np.float32(in_scale)
    assert c[f"{name}_input_zero_point"] == in_zero
    assert c[f"{name}_output_dtype"] == out_dtype
    assert c[f"{name}_output_t"] == C_TYPES[out_dtype]
    assert c[f"{name}_output_scale"] == np.float32(out_scale)
    assert c[f"{name}_output_zero_point"] == out_zero
    assert c[f"{name}_output_is_probabilities"] == probabilities
    assert c[f"{name}_output_kind"] == ("probabilities" if probabilities else "logits")
    assert c[f"{name}_num_classes"] == int(out["shape"][-1]) == len(labels)
    assert _c_labels(source, name) == list(labels)
    # The comment's formula is what q = round(pixel / 255 / scale) + zero_point gives.
    formula = _pixel_formula(header)
    info = np.iinfo(in_dtype)
    pixels = np.arange(256)
    general = np.clip(np.round(pixels / 255 / c[f"{name}_input_scale"])
                      + c[f"{name}_input_zero_point"], info.min, info.max)
    offset = re.fullmatch(r"q = pixel(?: ([-+]) (\d+))?", formula)
    assert offset, formula
    sign, amount = offset.groups()
    assert np.array_equal(general, pixels + (int(sign + amount) if sign else 0))
    if card_micro is not None:
        mi, mo = card_micro["input"], card_micro["output"]
        assert (mi["dtype"], mi["shape"], mi["channels"]) == (in_dtype, shape, shape[-1])
        assert (mi["scale"], mi["zero_point"]) == (in_scale, in_zero)
        assert mi["formula"] == formula
        assert (mo["dtype"], mo["shape"], mo["num_classes"]) == (
            out_dtype, [int(d) for d in out["shape"]], int(out["shape"][-1]))
        assert (mo["scale"], mo["zero_point"]) == (out_scale, out_zero)
        assert mo["kind"] == ("probabilities" if probabilities else "logits")
        assert card_micro["labels"] == list(labels)
    return decoded, c


def _tflm_accuracy_from_header(c, decoded, name, pixels, labels):
    """TFLM's top-1 accuracy on uint8 `pixels` fed the way the header says, nothing else:
    q = round(pixel / 255 / scale) + zero_point, clamped to the header's dtype, with the
    header's tensor arena."""
    from tflite_micro import runtime

    dtype = np.dtype(c[f"{name}_input_dtype"])
    info = np.iinfo(dtype)
    q = np.clip(np.round(pixels.astype(np.float64) / 255 / c[f"{name}_input_scale"])
                + c[f"{name}_input_zero_point"], info.min, info.max).astype(dtype)
    tflm = runtime.Interpreter.from_bytes(decoded, arena_size=c[f"{name}_tensor_arena_size"])
    predictions = []
    for image in q:
        tflm.set_input(image.reshape(c[f"{name}_input_shape"]), 0)
        tflm.invoke()
        predictions.append(int(np.argmax(tflm.get_output(0))))
    return float(np.mean(np.array(predictions) == np.asarray(labels)))


def _float_io_accuracy(model, representative, pixels, labels):
    """The LiteRT accuracy of the same model converted to int8 with float32 input and output
    (x = pixel / 255 in, no integer I/O to get wrong), on the same pixels."""
    from tftool.litert import Runner

    content = convert.to_tflite(model, "int8", representative, inference_input_type="float32",
                                inference_output_type="float32", rgb_input=False)
    scores = Runner(model_content=content)(pixels)
    return float(np.mean(scores.argmax(1) == np.asarray(labels)))


def test_header_and_card_describe_the_decoded_model(int8_model, trained, digits, tmp_path):
    """digits 8x8: the header constants and card fields match the flatbuffer decoded back from
    the .cc file; images prepared from the header alone give TFLM the accuracy of LiteRT on
    the float-I/O file."""
    model, images, labels = trained
    arena = micro.footprint(int8_model, name="digits_int8")
    header, source = micro.c_source(int8_model, "digits_int8", arena=arena,
                                    labels=digits.class_names)
    (tmp_path / "digits_int8_model_data.h").write_text(header)
    (tmp_path / "digits_int8_model_data.cc").write_text(source)
    header = (tmp_path / "digits_int8_model_data.h").read_text()
    source = (tmp_path / "digits_int8_model_data.cc").read_text()
    section = micro.card_section(int8_model, digits.class_names)
    decoded, c = _check_description(header, source, "digits_int8", digits.class_names, section)
    assert decoded == int8_model
    # What the issue saw: int8 in at zero point -128 (not the card top's uint8 q = pixel),
    # int8 logits out.
    assert _pixel_formula(header) == "q = pixel - 128"
    assert c["digits_int8_input_scale"] == np.float32(1 / 255)
    assert (c["digits_int8_input_dtype"], c["digits_int8_input_zero_point"]) == ("int8", -128)
    assert c["digits_int8_output_kind"] == "logits"
    assert c["digits_int8_tensor_arena_size"] == arena["arena_bytes"]
    assert "io_differences" not in section  # no app card given

    pixels = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)  # native 8x8: exact
    tflm = _tflm_accuracy_from_header(c, decoded, "digits_int8", pixels, labels)
    reference = _float_io_accuracy(model, data.representative_dataset(digits, IMAGE_SIZE),
                                   pixels, labels)
    agreement = micro.compare_with_litert(decoded, images, labels)["top1_agreement"]
    assert abs(tflm - reference) <= 1 - agreement + 1e-9, (tflm, reference, agreement)
    assert tflm >= 0.9


FOLDER_SIZE = (28, 28)


@pytest.fixture(scope="module")
def folder_export(tmp_path_factory, digits):
    """A 28x28 grayscale folder data set (the digits, upscaled with PIL, as PNG), a small_cnn
    trained on it, exported for an app (`export`: uint8 RGB in, probabilities out, the card)
    and for a microcontroller (`export_micro`, into the same card).
    Returns dict: dataset, model, export_dir, name ("digits28"), cname ("digits28_int8")."""
    from PIL import Image

    from tftool import fileio, stages
    from tftool.export import driver, micro_export

    root = tmp_path_factory.mktemp("digits28")
    for split, ds in (("train", digits.train.concatenate(digits.validation)),
                      ("test", digits.test)):
        for i, (image, label) in enumerate(ds.as_numpy_iterator()):
            class_dir = root / "folder" / split / digits.class_names[label]
            class_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.squeeze(image, -1), mode="L").resize(
                FOLDER_SIZE, Image.BILINEAR).save(class_dir / f"{i}.png")
    dataset = data.load(f"folder:{root / 'folder'}")
    assert dataset.image_shape[-1] == 1
    keras.utils.set_random_seed(0)
    model = models.build("small_cnn", FOLDER_SIZE + (1,), dataset.num_classes, width=8)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.pipeline(dataset.train, FOLDER_SIZE, 32, training=True, seed=0), epochs=3,
              verbose=0)
    workdir, export_dir = str(root / "work"), str(root / "exported")
    fileio.save_model(model, stages.model_path(workdir, "float"))
    representative = data.representative_dataset(dataset, FOLDER_SIZE)
    written, refused = driver.export(workdir, export_dir, "digits28", dataset, FOLDER_SIZE,
                                     ["int8"], representative, max_accuracy_drop=1.0,
                                     selective=False, splits=("test",), debugger=False)
    assert written and not refused, refused
    written, problems = micro_export.export_micro(workdir, export_dir, "digits28", dataset,
                                                  FOLDER_SIZE, ["int8"], representative)
    assert len(written) == 3 and not problems, problems
    return {"dataset": dataset, "model": model, "export_dir": export_dir,
            "representative": representative, "name": "digits28", "cname": "digits28_int8"}


def test_folder_28x28_header_card_and_header_fed_tflm(folder_export):
    """A 28x28 grayscale folder through tftool-export and --micro: the written header and the
    card's "micro" section describe the flatbuffer decoded from the written .cc (int8,
    q = pixel - 128, logits), the card says how it differs from the app's file (uint8 RGB,
    q = pixel, probabilities), and TFLM fed per the header alone scores as LiteRT on the
    float-I/O file."""
    e = folder_export
    dataset, cname = e["dataset"], e["cname"]
    folder = os.path.join(e["export_dir"], "micro")
    header = open(os.path.join(folder, f"{cname}_model_data.h")).read()
    source = open(os.path.join(folder, f"{cname}_model_data.cc")).read()
    card = json.load(open(os.path.join(e["export_dir"], f"{e['name']}_int8.json")))
    section = card["micro"]
    decoded, c = _check_description(header, source, cname, dataset.class_names, section)
    assert c[f"{cname}_input_shape"] == [1, 28, 28, 1] == section["input_shape"]
    assert _pixel_formula(header) == "q = pixel - 128" == section["input"]["formula"]
    assert section["output"]["kind"] == "logits"
    assert c[f"{cname}_tensor_arena_size"] == section["arena_bytes"]
    assert section["files"] == [f"{cname}_model_data.h", f"{cname}_model_data.cc",
                                f"{cname}_op_resolver.h"]
    # The card's top describes the app's file: what the firmware followed.
    app = micro.io_details(open(os.path.join(e["export_dir"], card["file"]), "rb").read())
    assert (card["input"]["dtype"], card["input"]["zero_point"]) == ("uint8", 0)
    assert app["input"]["formula"] == "q = pixel" and app["output"]["kind"] == "probabilities"
    assert card["output"]["meaning"] == "probabilities"
    differences = {d["field"]: (d["micro"], d["app"]) for d in section["io_differences"]}
    assert differences == {
        "input.dtype": ("int8", "uint8"), "input.shape": ([1, 28, 28, 1], [1, 28, 28, 3]),
        "input.zero_point": (-128, 0),
        "input.formula": ("q = pixel - 128", card["preprocessing"]["formula"]),
        "output.dtype": ("int8", "float32"),
        "output.scale": (section["output"]["scale"], 0.0),
        "output.zero_point": (section["output"]["zero_point"], 0),
        "output.kind": ("logits", "probabilities")}
    assert section["io_note"].startswith(f"The micro C array is another flatbuffer than "
                                         f"{card['file']}: input.dtype int8 (not uint8)")

    batches = list(data.test_batches(dataset, FOLDER_SIZE))
    pixels = np.concatenate([p for p, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    assert pixels.shape[1:] == (28, 28, 1) and len(labels) == section["num_images"]
    tflm = _tflm_accuracy_from_header(c, decoded, cname, pixels, labels)
    assert tflm == section["tflm_accuracy"]  # what export_micro measured with its own inputs
    reference = _float_io_accuracy(e["model"], e["representative"], pixels, labels)
    agreement = section["top1_agreement"]
    assert abs(tflm - reference) <= 1 - agreement + 1e-9, (tflm, reference, agreement)
    assert tflm >= 0.8
