"""Writing TFLite Model Metadata into a .tflite file: `populate` packs the ModelMetadata
flatbuffer (one image input, one score output, labels as a TENSOR_AXIS_LABELS file) into the
model and appends the ZIP of labels.txt and tftool.json, as tflite-support's MetadataPopulator
does. The spec followed, where the schema code comes from, the minimum parser version and
reading it back (`read`): export/metadata.py.
"""
import io
import json
import math
import zipfile

import numpy as np

import tftool
from tftool.export.metadata import (DTYPES, METADATA_FIELD_NAME, METADATA_FILE_IDENTIFIER,
                                    MODEL_FILE_IDENTIFIER, PROVENANCE_FILE, as_str, io_tensors,
                                    min_parser_version, parse_model, schemas)

LABELS_FILE = "labels.txt"
INPUT_KINDS = ("rgb", "grayscale")
OUTPUT_KINDS = ("probabilities", "logits")


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
    meta_fb, model_fb = schemas()
    model = parse_model(model_fb, tflite_bytes)
    in_tensor, out_tensor = io_tensors(model_fb, model)
    in_shape = [int(d) for d in in_tensor.ShapeAsNumpy()]
    out_shape = [int(d) for d in out_tensor.ShapeAsNumpy()]
    in_dtype, out_dtype = DTYPES.get(in_tensor.Type()), DTYPES.get(out_tensor.Type())
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
                        if as_str(m.name) != METADATA_FIELD_NAME]
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
