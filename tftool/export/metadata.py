"""TFLite Model Metadata for image classifiers: labels, normalization and provenance, inside
the .tflite file, as MediaPipe Tasks and the TFLite Task Library read it.
Here: the schemas, the minimum parser version and `read`; writing it is
metadata_write.populate (export/metadata_write.py).

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
    present in the metadata, starting at 1.0.0. The metadata metadata_write.populate writes
    uses no member newer than 1.0.0, so it is "1.0.0"; tests pin the port against the C++
    results for members added in 1.0.1 … 1.5.0.

Provenance (the tftool version and `extra`) is a JSON associated file, tftool.json, at model
level with type UNKNOWN: every parser version reads past it, unlike CustomMetadata (1.5.0).
"""
import io
import json
import zipfile

METADATA_FIELD_NAME = "TFLITE_METADATA"  # MetadataPopulator.METADATA_FIELD_NAME
METADATA_FILE_IDENTIFIER = b"M001"  # metadata_schema.fbs: file_identifier
MODEL_FILE_IDENTIFIER = b"TFL3"  # schema.fbs: file_identifier
PROVENANCE_FILE = "tftool.json"
INSTALL_HINT = ("pip install --no-deps tflite-support==0.4.4 (make install does it; see "
                "tftool/export/metadata.py for why --no-deps)")


def schemas():
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
    meta_fb, _ = schemas()
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


# ---- the model flatbuffer (read here, re-packed by metadata_write.populate) --------------------
DTYPES = {0: "float32", 3: "uint8", 9: "int8"}  # schema.fbs TensorType: FLOAT32, UINT8, INT8


def as_str(value):
    """A flatbuffer string (bytes) as str; str and None pass through."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def parse_model(model_fb, tflite_bytes):
    """The Model table of `tflite_bytes` (model_fb: the model schema module, schemas()[1]);
    ValueError when it is not a TFLite model or has other than one subgraph."""
    buf = bytes(tflite_bytes)
    if len(buf) < 8 or buf[4:8] != MODEL_FILE_IDENTIFIER:
        raise ValueError("not a TFLite model (flatbuffer identifier TFL3 missing)")
    model = model_fb.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"the model has {model.SubgraphsLength()} subgraphs; image "
                         f"classifiers have exactly one")
    return model


def io_tensors(model_fb, model):
    """(input tensor, output tensor) of the model's one subgraph; ValueError unless it has
    exactly one input and one output."""
    graph = model.Subgraphs(0)
    if graph.InputsLength() != 1 or graph.OutputsLength() != 1:
        raise ValueError(f"the model has {graph.InputsLength()} inputs and "
                         f"{graph.OutputsLength()} outputs; an image classifier has 1 and 1")
    return graph.Tensors(graph.Inputs(0)), graph.Tensors(graph.Outputs(0))


# ---- read --------------------------------------------------------------------------------------
def read(tflite_bytes):
    """The metadata of a .tflite written by metadata_write.populate(), as plain Python values.

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
      ValueError: not a TFLite model; it has no TFLITE_METADATA (metadata_write.populate()
        adds it); the metadata lacks input/output tensor metadata or a TENSOR_AXIS_LABELS
        file; a file the metadata names is missing from the ZIP; the labels do not match the
        output size.
    """
    meta_fb, model_fb = schemas()
    model = parse_model(model_fb, tflite_bytes)
    buf = bytes(tflite_bytes)
    raw = None
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if as_str(entry.Name()) == METADATA_FIELD_NAME:
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
    labels_name = next((as_str(f.name) for f in out_meta.associatedFiles or []
                        if f.type == meta_fb.AssociatedFileType.TENSOR_AXIS_LABELS), None)
    if labels_name is None:
        raise ValueError("the metadata names no TENSOR_AXIS_LABELS file for the output")
    if labels_name not in packed:
        raise ValueError(f"{labels_name} is named in the metadata but not packed in the "
                         f"model's ZIP")
    labels = packed[labels_name].decode("utf-8").splitlines()
    in_tensor, out_tensor = io_tensors(model_fb, model)
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
        "name": as_str(meta.name), "description": as_str(meta.description),
        "version": as_str(meta.version), "author": as_str(meta.author),
        "license": as_str(meta.license), "min_parser_version": as_str(meta.minParserVersion),
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
    return {"name": as_str(tensor_meta.name),
            "shape": [int(d) for d in tensor.ShapeAsNumpy()],
            "dtype": DTYPES.get(tensor.Type(), str(tensor.Type())),
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
