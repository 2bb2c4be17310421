"""tftool.export.metadata: populate/read round trip, the min parser version, and the real
client: MediaPipe Tasks' ImageClassifier (its own venv) loads our files and agrees with LiteRT."""
import json

import numpy as np
import pytest

import tftool
from tftool.export import metadata, metadata_write
import mediapipe_client
import tiny_classifier
from mediapipe_client import mediapipe_python  # noqa: F401  (fixture)

LABELS = [f"digit {i}" for i in range(10)]


@pytest.fixture(scope="module")
def rgb_digits(digits):
    return tiny_classifier.rgb_digits(digits)


@pytest.fixture(scope="module")
def trained(digits):
    return tiny_classifier.trained_rgb(digits)


_convert = tiny_classifier.convert
_litert_probabilities = tiny_classifier.litert_scores


def _populate(tflite_bytes, **overrides):
    args = dict(name="tiny digits", description="8x8 digits, tiny CNN", version="v1",
                labels=LABELS, extra={"variant": "test"})
    return metadata_write.populate(tflite_bytes, **{**args, **overrides})


@pytest.fixture(scope="module")
def float_model(trained):
    return _convert(trained, "float32")


def test_round_trip(float_model):
    populated = _populate(float_model)
    info = metadata.read(populated)
    assert info["name"] == "tiny digits" and info["version"] == "v1"
    assert info["description"] == "8x8 digits, tiny CNN" and info["author"] == "tftool"
    assert info["labels"] == LABELS
    assert info["tftool_version"] == tftool.__version__
    assert info["extra"] == {"variant": "test"}
    assert info["min_parser_version"] == "1.0.0"
    assert info["associated_files"] == ["labels.txt", "tftool.json"]
    assert info["input"]["color_space"] == "RGB"
    assert info["input"]["normalization"] == {"mean": [0.0], "std": [255.0]}
    assert info["input"]["stats"] == {"min": [0.0], "max": [1.0]}
    assert info["input"]["shape"] == [1, 8, 8, 3] and info["input"]["dtype"] == "float32"
    assert info["output"]["content"] == "FeatureProperties"
    assert info["output"]["stats"] == {"min": [0.0], "max": [1.0]}
    assert info["output"]["kind"] == "probabilities"
    # Populating again replaces the metadata and the ZIP rather than stacking them.
    again = metadata.read(_populate(populated, version="v2", labels=LABELS[::-1]))
    assert again["version"] == "v2" and again["labels"] == LABELS[::-1]
    # The graph is untouched: same scores as without metadata.
    images = (np.random.default_rng(0).random((4, 8, 8, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(_litert_probabilities(float_model, images),
                                  _litert_probabilities(populated, images))


def test_read_without_metadata_says_so(float_model):
    with pytest.raises(ValueError, match="no TFLite metadata"):
        metadata.read(float_model)
    with pytest.raises(ValueError, match="not a TFLite model"):
        metadata.read(b"PNG not a model at all")


def test_populate_refuses_what_clients_would_misread(float_model, trained, rgb_digits):
    with pytest.raises(ValueError, match="9 labels for an output of 10"):
        _populate(float_model, labels=LABELS[:9])
    with pytest.raises(ValueError, match="single lines"):
        _populate(float_model, labels=LABELS[:9] + ["a\nb"])
    with pytest.raises(ValueError, match="input_kind 'grayscale'"):
        _populate(float_model, input_kind="grayscale")
    with pytest.raises(ValueError, match="use mean 127.5, std 127.5"):
        _populate(float_model, input_range=(-1, 1), normalization=(0, 255))
    with pytest.raises(ValueError, match="unknown output_kind"):
        _populate(float_model, output_kind="boxes")
    # Calibrated on images darker than 1.0: the uint8 input's scale is not 1/255, and
    # MediaPipe (which feeds raw pixels) would see a different image than in training.
    dark = (rgb_digits[0][:50] // 2)
    with pytest.raises(ValueError, match="MediaPipe feeds raw pixels"):
        _populate(_convert(trained, "uint8_uint8", dark))


def _metadata_variant(meta_fb, change):
    import flatbuffers

    inp, out = meta_fb.TensorMetadataT(), meta_fb.TensorMetadataT()
    subgraph = meta_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [inp], [out]
    model = meta_fb.ModelMetadataT()
    model.name, model.subgraphMetadata = "m", [subgraph]
    change(meta_fb, model, subgraph, inp, out)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"M001")
    return bytes(builder.Output())


def _file(meta_fb, kind, version=None):
    f = meta_fb.AssociatedFileT()
    f.name, f.type, f.version = "f.txt", kind, version
    return f


def _unit(meta_fb, kind, options):
    unit = meta_fb.ProcessUnitT()
    unit.optionsType, unit.options = kind, options
    return unit


def _audio(fb, m, s, i, o):
    i.content = fb.ContentT()
    i.content.contentPropertiesType = fb.ContentProperties.AudioProperties
    i.content.contentProperties = fb.AudioPropertiesT()


# Expected values measured with the C++ GetMinimumMetadataParserVersion of tflite-support
# 0.4.4 (_pywrap_metadata_version, run with libusb-1.0 present) on these same buffers:
# 16 of 16 cases agreed with the port.
PARSER_VERSION_CASES = {
    "labels only": ("1.0.0", lambda fb, m, s, i, o: setattr(
        o, "associatedFiles", [_file(fb, fb.AssociatedFileType.TENSOR_AXIS_LABELS)])),
    "vocabulary": ("1.0.1", lambda fb, m, s, i, o: setattr(
        m, "associatedFiles", [_file(fb, fb.AssociatedFileType.VOCABULARY)])),
    "subgraph input units": ("1.1.0", lambda fb, m, s, i, o: setattr(s, "inputProcessUnits", [])),
    "bert tokenizer": ("1.1.0", lambda fb, m, s, i, o: setattr(i, "processUnits", [_unit(
        fb, fb.ProcessUnitOptions.BertTokenizerOptions, fb.BertTokenizerOptionsT())])),
    "tensor groups": ("1.2.0", lambda fb, m, s, i, o: setattr(
        s, "outputTensorGroups", [fb.TensorGroupT()])),
    "regex tokenizer": ("1.2.1", lambda fb, m, s, i, o: setattr(i, "processUnits", [_unit(
        fb, fb.ProcessUnitOptions.RegexTokenizerOptions, fb.RegexTokenizerOptionsT())])),
    "audio": ("1.3.0", _audio),
    "scann index": ("1.4.0", lambda fb, m, s, i, o: setattr(
        s, "associatedFiles", [_file(fb, fb.AssociatedFileType.SCANN_INDEX_FILE)])),
    "file version": ("1.4.1", lambda fb, m, s, i, o: setattr(
        o, "associatedFiles", [_file(fb, fb.AssociatedFileType.TENSOR_AXIS_LABELS, "2")])),
    "custom metadata": ("1.5.0", lambda fb, m, s, i, o: setattr(
        s, "customMetadata", [fb.CustomMetadataT()])),
}


@pytest.mark.parametrize("case", sorted(PARSER_VERSION_CASES))
def test_min_parser_version_matches_cpp(case):
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as meta_fb

    expected, change = PARSER_VERSION_CASES[case]
    assert metadata.min_parser_version(_metadata_variant(meta_fb, change)) == expected


# ---- the real client: MediaPipe Tasks ImageClassifier ------------------------------------------
@pytest.fixture(scope="module")
def test_pngs(rgb_digits, tmp_path_factory):
    """48 digits test images as 8x8 RGB PNGs: (paths, uint8 [48, 8, 8, 3], labels)."""
    from PIL import Image

    _, _, x_test, y_test = rgb_digits
    folder = tmp_path_factory.mktemp("rgb_pngs")
    paths = []
    for i, image in enumerate(x_test[:48]):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(image, mode="RGB").save(paths[-1])
    return paths, x_test[:48], y_test[:48]


@pytest.mark.parametrize("mode", ["float32", "uint8_uint8", "uint8_float32"])
def test_mediapipe_agrees_with_litert(mode, trained, rgb_digits, test_pngs, tmp_path,
                                      mediapipe_python):  # noqa: F811
    paths, images, labels = test_pngs
    model = _convert(trained, mode, rgb_digits[0][:200])
    model_path = tmp_path / f"digits_{mode}.tflite"
    model_path.write_bytes(_populate(model))

    results = mediapipe_client.classify(mediapipe_python, model_path, paths)
    litert = _litert_probabilities(model, images)
    assert [r["image"] for r in results] == paths
    mp_top1 = np.array([r["categories"][0]["index"] for r in results])
    strict = mp_top1 == litert.argmax(1)
    # A uint8 output can hold two classes at the same top score; either order is right.
    tie = litert[np.arange(len(paths)), mp_top1] == litert.max(1)
    agreement = float(np.mean(strict | tie))
    print(f"{mode}: MediaPipe top-1 == LiteRT top-1 on {strict.sum()} of {len(paths)} "
          f"({np.sum(tie & ~strict)} ties); accuracy {np.mean(mp_top1 == labels):.3f}")
    assert agreement >= 0.99
    assert np.mean(mp_top1 == labels) >= 0.7  # the model really classifies
    step = 1 / 256 if mode == "uint8_uint8" else 1e-4  # one output quantization step
    for result, scores in zip(results, litert):
        categories = result["categories"]
        assert len(categories) == 10
        assert all(c["category_name"] == LABELS[c["index"]] for c in categories)
        assert abs(sum(c["score"] for c in categories) - 1) <= 0.01
        mp_scores = np.zeros(10)
        mp_scores[[c["index"] for c in categories]] = [c["score"] for c in categories]
        np.testing.assert_allclose(mp_scores, scores, atol=step * 1.01)


def test_mediapipe_refuses_float_model_without_metadata(float_model, test_pngs, tmp_path,
                                                        mediapipe_python):  # noqa: F811
    """Proves the client test can fail: no NormalizationOptions, no float32 ImageClassifier."""
    model_path = tmp_path / "no_metadata.tflite"
    model_path.write_bytes(float_model)
    proc = mediapipe_client.run(mediapipe_python, model_path, test_pngs[0][:1])
    assert proc.returncode == 1, proc.stdout
    assert "requires specifying NormalizationOptions metadata" in proc.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(proc.stdout)
