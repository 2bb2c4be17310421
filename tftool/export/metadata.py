"""TFLite Model Metadata for image classifiers: labels, normalization and provenance, inside
the .tflite file, as MediaPipe Tasks and the TFLite Task Library read it.

Spec followed: the TFLite metadata schema `metadata_schema.fbs` (Schema Semantic version 1.5.0,
file identifier "M001"; https://www.tensorflow.org/lite/models/convert/metadata) and the way
tflite-support's `MetadataPopulator` stores it: the metadata flatbuffer is a model buffer
referenced by a `Model.metadata` entry named "TFLITE_METADATA", and the associated files
(labels.txt) are a ZIP archive appended after the model flatbuffer (stored, not deflated).
MediaPipe's ImageClassifier (mediapipe/tasks/cc/vision/utils/image_tensor_specs.cc) then takes
the input size from the tensor, the color space from ImageProperties (RGB only), the pixel
normalization from NormalizationOptions (required for float32 inputs; it computes
(pixel - mean) / std on 0..255 pixels) and the class names from the output tensor's
TENSOR_AXIS_LABELS file.

Where the schema code comes from (and why):
  * The metadata schema: the flatc-generated `metadata_schema_py_generated.py` that ships in
    the tflite-support 0.4.4 wheel (`tensorflow_lite_support.metadata`; schema 1.5.0, the same
    tables and field ids as the copy in mediapipe 1.2.2, whose .fbs differs only in comments).
    `make install` installs that wheel with `pip install --no-deps`: its declared deps
    (protobuf<4, pybind11, sounddevice) clash with TensorFlow 2.21's protobuf>=6.31, but the
    generated module needs only the `flatbuffers` runtime we already have, and the
    `tensorflow_lite_support` package's `__init__` files are empty, so importing it loads no
    compiled code. The rest of the wheel (tflite_support.task, the pybind .so files) is never
    imported. Not taken: the mediapipe 1.x metadata writers (they import
    `_pywrap_metadata_version`, absent from the wheels, and `import mediapipe` needs absl-py 2
    while tfmot pins absl-py 1); tflite-support's own `MetadataPopulator` (its
    `_pywrap_metadata_version.so` and `_pywrap_flatbuffers.so` link against libusb-1.0, which a
    plain Debian/CI machine lacks: "ImportError: libusb-1.0.so.0"); generating code with flatc
    (it would still need the .fbs from one of those wheels, plus a compiler step).
  * The model schema: `ai_edge_litert.schema_py_generated` from the LiteRT runtime we run the
    models with, i.e. the newest TFLite schema in the venv. An older copy (tflite-support's,
    2023) would silently drop model fields it does not know when the model is re-packed.
  * min_parser_version: computed by `min_parser_version()` below, a line-by-line port of
    `GetMinimumMetadataParserVersion` (mediapipe/tasks/cc/metadata/metadata_version.cc, the
    function MetadataPopulator calls): the largest "added in" version of every schema member
    present in the metadata, starting at 1.0.0. The metadata written here uses no member newer
    than 1.0.0, so it is "1.0.0"; tests pin the port against the C++ results for members added
    in 1.0.1 … 1.5.0.

Provenance (the tftool version and `extra`) is a JSON associated file, tftool.json, at model
level with type UNKNOWN: every parser version reads past it, unlike CustomMetadata (1.5.0).
"""
import io
import json
import math
import zipfile

import numpy as np

import tftool

METADATA_FIELD_NAME = "TFLITE_METADATA"  # MetadataPopulator.METADATA_FIELD_NAME
METADATA_FILE_IDENTIFIER = b"M001"  # metadata_schema.fbs: file_identifier
MODEL_FILE_IDENTIFIER = b"TFL3"  # schema.fbs: file_identifier
LABELS_FILE = "labels.txt"
PROVENANCE_FILE = "tftool.json"
INPUT_KINDS = ("rgb", "grayscale")
OUTPUT_KINDS = ("probabilities", "logits")
INSTALL_HINT = ("pip install --no-deps tflite-support==0.4.4 (make install does it; see "
                "tftool/export/metadata.py for why --no-deps)")


def _schemas():
    """(metadata schema module, model schema module); ImportError -> ValueError with the fix."""
    try:
        from tensorflow_lite_support.metadata import metadata_schema_py_generated as meta_fb
    except ImportError as e:
        raise ValueError(f"the TFLite metadata schema is not installed ({e}); run "
                         f"{INSTALL_HINT}") from e
    from ai_edge_litert import schema_py_generated as model_fb
    return meta_fb, model_fb


# ---- minimum metadata parser version (port of metadata_version.cc) -------------------------
# "Added in" versions of the schema members newer than 1.0.0: GetMemberVersion() in
# mediapipe/tasks/cc/metadata/metadata_version.cc and the changelog in metadata_schema.fbs.
_VOCABULARY, _SCANN_INDEX = (1, 0, 1), (1, 4, 0)
_SUBGRAPH_PROCESS_UNITS, _BERT, _SENTENCE_PIECE = (1, 1, 0), (1, 1, 0), (1, 1, 0)
_TENSOR_GROUPS, _REGEX = (1, 2, 0), (1, 2, 1)
_AUDIO_PROPERTIES, _FILE_VERSION, _CUSTOM_METADATA = (1, 3, 0), (1, 4, 1), (1, 5, 0)


def min_parser_version(metadata_buffer):
    """The minimum metadata parser version that can read `metadata_buffer`, e.g. "1.0.0".

    A port of GetMinimumMetadataParserVersion (MediaPipe/tflite-support metadata_version.cc),
    which MetadataPopulator.load_metadata_buffer calls: start at 1.0.0 and raise it to the
    version that added each schema member found (AssociatedFile types VOCABULARY 1.0.1 and
    SCANN_INDEX_FILE 1.4.0, AssociatedFile.version 1.4.1, subgraph input/output process units
    1.1.0, Bert/SentencePiece tokenizers 1.1.0, tensor groups 1.2.0, RegexTokenizer 1.2.1,
    AudioProperties 1.3.0, CustomMetadata 1.5.0).

    Args:
      metadata_buffer: bytes of a ModelMetadata flatbuffer (identifier "M001").
    Returns:
      str "MAJOR.MINOR.PATCH".
    Raises:
      ValueError: not a metadata flatbuffer.
    """
    meta_fb, _ = _schemas()
    buf = bytes(metadata_buffer)
    if len(buf) < 8 or buf[4:8] != METADATA_FILE_IDENTIFIER:
        raise ValueError("not a TFLite ModelMetadata flatbuffer (identifier M001 missing)")
    root = meta_fb.ModelMetadata.GetRootAs(buf, 0)
    versions = [(1, 0, 0)]
    files = _table_list(root, "AssociatedFiles")
    for s in _table_list(root, "SubgraphMetadata"):
        tensors = _table_list(s, "InputTensorMetadata") + _table_list(s, "OutputTensorMetadata")
        for tensor in tensors:
            files += _table_list(tensor, "AssociatedFiles")
            versions += [_unit_version(meta_fb, u) for u in _table_list(tensor, "ProcessUnits")]
            content = tensor.Content()
            if (content is not None and content.ContentPropertiesType()
                    == meta_fb.ContentProperties.AudioProperties):
                versions.append(_AUDIO_PROPERTIES)
        files += _table_list(s, "AssociatedFiles")
        for field in ("InputProcessUnits", "OutputProcessUnits"):
            if not getattr(s, field + "IsNone")():
                versions.append(_SUBGRAPH_PROCESS_UNITS)
                versions += [_unit_version(meta_fb, u) for u in _table_list(s, field)]
        if not s.InputTensorGroupsIsNone() or not s.OutputTensorGroupsIsNone():
            versions.append(_TENSOR_GROUPS)
        if not s.CustomMetadataIsNone():
            versions.append(_CUSTOM_METADATA)
    for f in files:
        if f.Type() == meta_fb.AssociatedFileType.VOCABULARY:
            versions.append(_VOCABULARY)
        if f.Type() == meta_fb.AssociatedFileType.SCANN_INDEX_FILE:
            versions.append(_SCANN_INDEX)
        if f.Version() is not None:
            versions.append(_FILE_VERSION)
    return ".".join(str(v) for v in max(versions))


def _table_list(table, field):
    """The elements of a vector-of-tables field ([] when absent)."""
    return [getattr(table, field)(i) for i in range(getattr(table, field + "Length")())]


def _unit_version(meta_fb, unit):
    options = meta_fb.ProcessUnitOptions
    return {options.BertTokenizerOptions: _BERT,
            options.SentencePieceTokenizerOptions: _SENTENCE_PIECE,
            options.RegexTokenizerOptions: _REGEX}.get(unit.OptionsType(), (1, 0, 0))


# ---- populate ----------------------------------------------------------------------------------
def populate(tflite_bytes, *, name, description, version, labels, author="tftool",
             license=None, input_kind=None, input_range=(0.0, 1.0), normalization=None,
             output_kind="probabilities", extra=None):
    """Returns `tflite_bytes` with image-classifier metadata and labels.txt embedded.

    The model must have one subgraph, one input [1, H, W, C] (float32 or uint8; C = 3 for
    "rgb", 1 for "grayscale") and one output [1, K] (float32 or uint8), K = len(labels).
    Existing metadata and associated files are replaced (the model is re-packed, as
    MetadataPopulator does).

    Args:
      tflite_bytes: the .tflite flatbuffer (bytes), e.g. from convert.to_tflite.
      name, description, version, author, license: ModelMetadata strings. The tftool version
        that made the file is recorded too (tftool.json; read() returns it).
      labels: K class names (str, non-empty, no line breaks) in output-index order; stored as
        labels.txt, one per line, a TENSOR_AXIS_LABELS file of the output tensor.
      input_kind: "rgb" or "grayscale" (ImageProperties.color_space; MediaPipe accepts only
        RGB); None: from the input's channels (3 -> rgb, 1 -> grayscale).
      input_range: (lo, hi), the float range the model was trained on for pixels 0..255
        (tftool's preprocessing: (0, 1)). For a float32 input it gives the default
        NormalizationOptions and the input Stats; for a uint8 input the tensor's quantization
        (scale, zero point) must map 0..255 onto it, because MediaPipe feeds raw pixels to a
        uint8 input without looking at its quantization.
      normalization: (mean, std), scalars or one per channel, in 0..255 pixel units, so that
        the model input is (pixel - mean) / std (NormalizationOptions). None: the one that
        maps 0..255 onto input_range (for (0, 1): mean 0, std 255). Given, it must agree with
        input_range.
      output_kind: "probabilities" (softmax output; Stats min 0, max 1) or "logits" (no
        Stats; MediaPipe's scores are then logits, tftool.classify applies a softmax).
      extra: JSON-serializable dict stored in tftool.json (e.g. accuracy, variant).
    Returns:
      bytes: the .tflite flatbuffer with a "TFLITE_METADATA" buffer, followed by a stored
      ZIP of labels.txt and tftool.json.
    Raises:
      ValueError: not a TFLite model, unsupported input/output tensors, wrong label count or
        label text, unknown input_kind/output_kind, normalization or uint8 quantization that
        disagrees with input_range, buffers stored outside the flatbuffer (> 2 GB models),
        the metadata schema not installed.
    """
    meta_fb, model_fb = _schemas()
    model = _parse_model(model_fb, tflite_bytes)
    in_tensor, out_tensor = _io_tensors(model_fb, model)
    in_shape = [int(d) for d in in_tensor.ShapeAsNumpy()]
    out_shape = [int(d) for d in out_tensor.ShapeAsNumpy()]
    in_dtype, out_dtype = _DTYPES.get(in_tensor.Type()), _DTYPES.get(out_tensor.Type())
    if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[3] not in (1, 3):
        raise ValueError(f"input tensor shape {in_shape}: expected [1, H, W, 1 or 3]")
    if in_dtype not in ("float32", "uint8"):
        raise ValueError(f"input tensor type {in_dtype or in_tensor.Type()}: MediaPipe and "
                         f"tftool.classify take float32 or uint8 (convert with "
                         f"inference_input_type=tf.uint8)")
    if len(out_shape) != 2 or out_shape[0] != 1:
        raise ValueError(f"output tensor shape {out_shape}: expected [1, K]")
    if out_dtype not in ("float32", "uint8"):
        raise ValueError(f"output tensor type {out_dtype or out_tensor.Type()}: MediaPipe "
                         f"takes float32 or uint8 scores")
    labels = _check_labels(labels, out_shape[1])
    channels = in_shape[3]
    if input_kind is None:
        input_kind = "rgb" if channels == 3 else "grayscale"
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"unknown input_kind {input_kind!r}; allowed: {', '.join(INPUT_KINDS)}")
    if (input_kind == "rgb") != (channels == 3):
        raise ValueError(f"input_kind {input_kind!r} does not fit the input's {channels} "
                         f"channel(s)")
    if output_kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output_kind {output_kind!r}; allowed: "
                         f"{', '.join(OUTPUT_KINDS)}")
    mean, std = _normalization(input_range, normalization, channels)
    if in_dtype == "uint8":
        _check_uint8_quantization(in_tensor, input_range)
        stats = ([0.0], [255.0])
    else:
        stats = ([float(input_range[0])], [float(input_range[1])])

    provenance = {"tftool_version": tftool.__version__, "extra": dict(extra or {})}
    try:
        provenance_text = json.dumps(provenance, indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError) as e:
        raise ValueError(f"extra is not JSON-serializable: {e}") from e

    metadata = _metadata_table(meta_fb, name=name, description=description, version=version,
                               author=author, license=license, input_kind=input_kind,
                               mean=mean, std=std, stats=stats, output_kind=output_kind)
    metadata_buffer = _finish(meta_fb, metadata, METADATA_FILE_IDENTIFIER)
    # As MetadataPopulator.load_metadata_buffer: compute the version from the packed buffer,
    # then pack again with it.
    metadata.minParserVersion = min_parser_version(metadata_buffer)
    metadata_buffer = _finish(meta_fb, metadata, METADATA_FILE_IDENTIFIER)

    model_t = model_fb.ModelT.InitFromObj(model)
    if any(getattr(b, "offset", 0) > 1 for b in model_t.buffers or []):
        raise ValueError("the model stores buffers outside the flatbuffer (a > 2 GB model); "
                         "re-packing it would break their offsets")
    buffer_t = model_fb.BufferT()
    buffer_t.data = np.frombuffer(metadata_buffer, np.uint8)
    model_t.buffers = list(model_t.buffers or [])
    model_t.metadata = [m for m in (model_t.metadata or [])
                        if _str(m.name) != METADATA_FIELD_NAME]
    model_t.buffers.append(buffer_t)
    entry = model_fb.MetadataT()
    entry.name = METADATA_FIELD_NAME
    entry.buffer = len(model_t.buffers) - 1
    model_t.metadata.append(entry)
    # Earlier metadata buffers become unreferenced; they are small and harmless.
    model_bytes = _finish(model_fb, model_t, MODEL_FILE_IDENTIFIER)

    out = io.BytesIO(model_bytes)
    out.seek(0, io.SEEK_END)
    # Append mode on a non-ZIP file appends a new archive after it (MetadataPopulator
    # ._populate_associated_files); ZIP_STORED: MediaPipe reads the files in place. A fixed
    # timestamp (the ZIP epoch) instead of the clock: the same model gives the same bytes, so
    # a re-export does not rewrite an unchanged file or mark its benchmark figures stale.
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, text in ((LABELS_FILE, "".join(label + "\n" for label in labels)),
                           (PROVENANCE_FILE, provenance_text)):
            zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_EPOCH), text,
                        compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


_DTYPES = {0: "float32", 3: "uint8", 9: "int8"}  # schema.fbs TensorType: FLOAT32, UINT8, INT8


def _str(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _parse_model(model_fb, tflite_bytes):
    buf = bytes(tflite_bytes)
    if len(buf) < 8 or buf[4:8] != MODEL_FILE_IDENTIFIER:
        raise ValueError("not a TFLite model (flatbuffer identifier TFL3 missing)")
    model = model_fb.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"the model has {model.SubgraphsLength()} subgraphs; image "
                         f"classifiers have exactly one")
    return model


def _io_tensors(model_fb, model):
    graph = model.Subgraphs(0)
    if graph.InputsLength() != 1 or graph.OutputsLength() != 1:
        raise ValueError(f"the model has {graph.InputsLength()} inputs and "
                         f"{graph.OutputsLength()} outputs; an image classifier has 1 and 1")
    return graph.Tensors(graph.Inputs(0)), graph.Tensors(graph.Outputs(0))


def _check_labels(labels, num_classes):
    labels = [str(label) for label in labels]
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels for an output of {num_classes} classes")
    for label in labels:
        if not label.strip() or "\n" in label or "\r" in label:
            raise ValueError(f"label {label!r}: labels must be non-empty single lines")
    return labels


def _normalization(input_range, normalization, channels):
    """(mean list, std list) in 0..255 units that maps pixels 0..255 onto input_range."""
    lo, hi = (float(v) for v in input_range)
    if not hi > lo:
        raise ValueError(f"input_range {input_range}: expected (lo, hi) with hi > lo")
    # (0 - mean) / std = lo and (255 - mean) / std = hi.
    std_default = 255.0 / (hi - lo)
    expected = (0.0 - lo * std_default + 0.0, std_default)
    if normalization is None:
        return [expected[0]], [expected[1]]
    mean, std = ([float(v) for v in np.atleast_1d(x)] for x in normalization)
    if len(mean) != len(std) or len(mean) not in (1, channels):
        raise ValueError(f"normalization {normalization}: mean and std need 1 or {channels} "
                         f"values each")
    if min(std) <= 0:
        raise ValueError(f"normalization std {std} must be > 0")
    for m, s in zip(mean, std):
        got = ((0 - m) / s, (255 - m) / s)
        if not (math.isclose(got[0], lo, abs_tol=1e-3) and math.isclose(got[1], hi, abs_tol=1e-3)):
            raise ValueError(f"normalization mean {m}, std {s} maps pixels 0..255 to "
                             f"[{got[0]:.4g}, {got[1]:.4g}], not input_range [{lo}, {hi}]; "
                             f"for input_range [{lo}, {hi}] use mean {expected[0]:.6g}, "
                             f"std {expected[1]:.6g}")
    return mean, std


def _check_uint8_quantization(tensor, input_range):
    q = tensor.Quantization()
    if q is None or q.ScaleLength() != 1 or q.ZeroPointLength() != 1:
        raise ValueError("the uint8 input has no per-tensor quantization; convert with a "
                         "representative dataset")
    scale, zero_point = float(q.Scale(0)), int(q.ZeroPoint(0))
    lo, hi = (float(v) for v in input_range)
    got = (scale * (0 - zero_point), scale * (255 - zero_point))
    tol = 0.01 * (hi - lo)
    if not (abs(got[0] - lo) <= tol and abs(got[1] - hi) <= tol):
        raise ValueError(f"the uint8 input's quantization (scale {scale:.6g}, zero point "
                         f"{zero_point}) maps pixels 0..255 to [{got[0]:.4g}, {got[1]:.4g}], "
                         f"not input_range [{lo}, {hi}]; MediaPipe feeds raw pixels, so "
                         f"calibrate with data spanning the full range (0 and 1 included)")


def _metadata_table(meta_fb, *, name, description, version, author, license, input_kind,
                    mean, std, stats, output_kind):
    """The ModelMetadataT object (metadata_schema.fbs) for one image input, one score output."""
    image = meta_fb.ImagePropertiesT()
    image.colorSpace = (meta_fb.ColorSpaceType.RGB if input_kind == "rgb"
                        else meta_fb.ColorSpaceType.GRAYSCALE)
    in_content = meta_fb.ContentT()
    in_content.contentPropertiesType = meta_fb.ContentProperties.ImageProperties
    in_content.contentProperties = image
    norm = meta_fb.NormalizationOptionsT()
    norm.mean, norm.std = list(mean), list(std)
    unit = meta_fb.ProcessUnitT()
    unit.optionsType = meta_fb.ProcessUnitOptions.NormalizationOptions
    unit.options = norm
    in_stats = meta_fb.StatsT()
    in_stats.min, in_stats.max = list(stats[0]), list(stats[1])
    inp = meta_fb.TensorMetadataT()
    inp.name = "image"
    inp.description = ("Input image, 1 x H x W x C, pixels normalized as "
                       "(pixel - mean) / std with the NormalizationOptions below.")
    inp.content, inp.processUnits, inp.stats = in_content, [unit], in_stats

    out_content = meta_fb.ContentT()
    out_content.contentPropertiesType = meta_fb.ContentProperties.FeatureProperties
    out_content.contentProperties = meta_fb.FeaturePropertiesT()
    labels_file = meta_fb.AssociatedFileT()
    labels_file.name = LABELS_FILE
    labels_file.description = "Class names, one per line, in output-index order."
    labels_file.type = meta_fb.AssociatedFileType.TENSOR_AXIS_LABELS
    out = meta_fb.TensorMetadataT()
    out.name = output_kind
    out.content, out.associatedFiles = out_content, [labels_file]
    if output_kind == "probabilities":
        out.description = "Probabilities of the classes in labels.txt (softmax, sum 1)."
        out_stats = meta_fb.StatsT()
        out_stats.min, out_stats.max = [0.0], [1.0]
        out.stats = out_stats
    else:
        out.description = "Logits of the classes in labels.txt (apply a softmax for " \
                          "probabilities)."
        out.stats = meta_fb.StatsT()

    subgraph = meta_fb.SubGraphMetadataT()
    subgraph.name = "image_classifier"
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [inp], [out]
    provenance = meta_fb.AssociatedFileT()
    provenance.name = PROVENANCE_FILE
    provenance.description = "tftool provenance: the tftool version that made the file, extras."
    provenance.type = meta_fb.AssociatedFileType.UNKNOWN

    meta = meta_fb.ModelMetadataT()
    meta.name, meta.description, meta.version = str(name), str(description), str(version)
    meta.author = str(author)
    if license is not None:
        meta.license = str(license)
    meta.subgraphMetadata = [subgraph]
    meta.associatedFiles = [provenance]
    return meta


def _finish(fb_module, table_t, identifier):
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(table_t.Pack(builder), identifier)
    return bytes(builder.Output())


# ---- read --------------------------------------------------------------------------------------
def read(tflite_bytes):
    """The metadata of a .tflite written by populate(), as plain Python values.

    Args:
      tflite_bytes: the .tflite file's bytes.
    Returns:
      dict with name, description, version, author, license, min_parser_version,
      tftool_version, extra (dict), labels (list of str, output-index order), associated_files
      (names packed in the ZIP), input {name, shape [1,H,W,C], dtype "float32"|"uint8",
      quantization (scale, zero_point) or None, color_space "RGB"|"GRAYSCALE",
      normalization {mean, std} (lists, 0..255 units) or None, stats {min, max}} and output
      {name, shape, dtype, quantization, content "FeatureProperties", kind
      "probabilities"|"logits", stats {min, max}}.
    Raises:
      ValueError: not a TFLite model; it has no TFLITE_METADATA (populate() adds it);
        the metadata lacks input/output tensor metadata or a TENSOR_AXIS_LABELS file; a file
        the metadata names is missing from the ZIP; the labels do not match the output size.
    """
    meta_fb, model_fb = _schemas()
    model = _parse_model(model_fb, tflite_bytes)
    buf = bytes(tflite_bytes)
    raw = None
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _str(entry.Name()) == METADATA_FIELD_NAME:
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
    if raw is None or not hasattr(raw, "tobytes") or raw.size == 0:
        raise ValueError("the model has no TFLite metadata (no TFLITE_METADATA buffer)")
    meta_buf = raw.tobytes()
    if meta_buf[4:8] != METADATA_FILE_IDENTIFIER:
        raise ValueError("the TFLITE_METADATA buffer is not a metadata flatbuffer (no M001)")
    meta = meta_fb.ModelMetadataT.InitFromObj(meta_fb.ModelMetadata.GetRootAs(meta_buf, 0))
    if not meta.subgraphMetadata or not meta.subgraphMetadata[0].inputTensorMetadata \
            or not meta.subgraphMetadata[0].outputTensorMetadata:
        raise ValueError("the metadata has no input/output tensor metadata")
    subgraph = meta.subgraphMetadata[0]
    in_meta, out_meta = subgraph.inputTensorMetadata[0], subgraph.outputTensorMetadata[0]
    packed = _zip_files(buf)
    labels_name = next((_str(f.name) for f in out_meta.associatedFiles or []
                        if f.type == meta_fb.AssociatedFileType.TENSOR_AXIS_LABELS), None)
    if labels_name is None:
        raise ValueError("the metadata names no TENSOR_AXIS_LABELS file for the output")
    if labels_name not in packed:
        raise ValueError(f"{labels_name} is named in the metadata but not packed in the "
                         f"model's ZIP")
    labels = packed[labels_name].decode("utf-8").splitlines()
    in_tensor, out_tensor = _io_tensors(model_fb, model)
    num_classes = int(out_tensor.ShapeAsNumpy()[-1])
    if len(labels) != num_classes:
        raise ValueError(f"{labels_name} has {len(labels)} lines for {num_classes} outputs")
    provenance = {}
    if PROVENANCE_FILE in packed:
        provenance = json.loads(packed[PROVENANCE_FILE].decode("utf-8"))

    color_space, normalization = None, None
    content = in_meta.content
    if content is not None and content.contentPropertiesType == \
            meta_fb.ContentProperties.ImageProperties:
        names = {v: k for k, v in vars(meta_fb.ColorSpaceType).items() if not k.startswith("_")}
        color_space = names.get(content.contentProperties.colorSpace)
    for unit in in_meta.processUnits or []:
        if unit.optionsType == meta_fb.ProcessUnitOptions.NormalizationOptions:
            normalization = {"mean": [float(v) for v in unit.options.mean],
                             "std": [float(v) for v in unit.options.std]}
            break
    out_kind = "probabilities" if out_meta.stats is not None and \
        _floats(out_meta.stats.max) == [1.0] else "logits"
    return {
        "name": _str(meta.name), "description": _str(meta.description),
        "version": _str(meta.version), "author": _str(meta.author),
        "license": _str(meta.license), "min_parser_version": _str(meta.minParserVersion),
        "tftool_version": provenance.get("tftool_version"),
        "extra": provenance.get("extra", {}), "labels": labels,
        "associated_files": sorted(packed),
        "input": {**_tensor_info(in_tensor, in_meta), "color_space": color_space,
                  "normalization": normalization},
        "output": {**_tensor_info(out_tensor, out_meta), "kind": out_kind,
                   "content": "FeatureProperties" if out_meta.content is not None and
                   out_meta.content.contentPropertiesType ==
                   meta_fb.ContentProperties.FeatureProperties else None},
    }


def _floats(values):
    return None if values is None else [float(v) for v in values]


def _tensor_info(tensor, tensor_meta):
    q = tensor.Quantization()
    quantization = None
    if q is not None and q.ScaleLength() == 1 and q.ZeroPointLength() == 1:
        quantization = (float(q.Scale(0)), int(q.ZeroPoint(0)))
    stats = tensor_meta.stats
    return {"name": _str(tensor_meta.name),
            "shape": [int(d) for d in tensor.ShapeAsNumpy()],
            "dtype": _DTYPES.get(tensor.Type(), str(tensor.Type())),
            "quantization": quantization,
            "stats": {"min": _floats(stats.min) if stats else None,
                      "max": _floats(stats.max) if stats else None}}


def _zip_files(buf):
    """{name: bytes} of the ZIP appended after the flatbuffer ({} when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except zipfile.BadZipFile:
        return {}
