"""Micro export: firmware sources (C array, op resolver) in EXPORT_DIR/micro/ for every
integer variant, measured in TensorFlow Lite Micro (export/micro/), checked against LiteRT
and recorded in the variant's model card (`tftool-export --micro`).
"""
import os

from tftool import UserError, fileio, stage_runner, stages
from tftool.export import convert


# Conversion modes whose models run on TensorFlow Lite Micro (integer kernels).
MICRO_MODES = ("int8", "int8_per_tensor", "qat_int8")


def export_micro(workdir, export_dir, name, dataset, image_size, variants,
                 representative_dataset, micro_flash_kb=None, micro_ram_kb=None):
    """EXPORT_DIR/micro/: firmware sources for every integer variant among `variants`.

    Each is converted again with the trained channel count (firmware feeds what its sensor
    gives; no RGB conversion), measured in the TFLM interpreter (micro.footprint: flash, the
    smallest working tensor arena + margin) and checked against LiteRT on the whole test
    split (micro.compare_with_litert); then written as <name>_<variant>_model_data.{h,cc}
    (the arena size, the input's dtype, shape, scale, zero point and pixel formula, the
    output's dtype, scale, zero point and kind, and the class names in the header and source)
    and <name>_<variant>_op_resolver.h, and the figures go into the variant's model card
    ("micro"), with the same input/output fields (micro.card_section) and where they differ
    from the app's .tflite of the variant.
    Returns:
      (written: [paths], problems: [one line per variant not written: an op TFLM lacks, or
      over the --micro_flash_kb/--micro_ram_kb budget]).
    """
    import re

    from tftool import data
    from tftool.export import micro

    written, problems, models = [], [], {}
    for variant in variants:
        stage, mode = stages.VARIANTS[variant]
        if mode not in MICRO_MODES:
            continue
        if stage not in models:
            models[stage] = stage_runner.load_stage_model(workdir, stage)
        content = convert.to_tflite(models[stage], mode, **micro_conversion(
            representative_dataset))
        cname = re.sub(r"\W", "_", f"{name}_{variant}")
        try:
            footprint = micro.footprint(content, micro_flash_kb, micro_ram_kb, name=variant)
        except UserError as e:
            problems.append(f"{variant}: {e}")
            continue
        card_path = os.path.join(export_dir, f"{name}_{variant}.json")
        card = fileio.read_json_object(card_path, fix="run tftool-export again")
        section = {k: v for k, v in footprint.items() if k != "message"}
        section["budget_kb"] = {"flash": micro_flash_kb, "ram": micro_ram_kb}
        section["input_shape"] = [1, *models[stage].input_shape[1:]]
        # How to feed and read this flatbuffer (not the app's: int8 I/O, logits), read from it.
        section.update(micro.card_section(content, dataset.class_names, card))
        # The app export's file this was measured beside (export/card.py carry_over).
        section["file_sha256"] = (card or {}).get("sha256")
        if not footprint["fits"]:  # named, not written; the report still shows its figures
            problems.append(footprint["message"])
            if card is not None:
                fileio.write_json(card_path, {**card, "micro": section})
            continue
        batches = ((pixels.astype("float32") / 255.0)
                   for pixels, _ in data.test_batches(dataset, image_size))
        labels = [y for _, ys in data.test_batches(dataset, image_size) for y in ys]
        agreement = micro.compare_with_litert(content, batches, labels)
        header, source = micro.c_source(content, cname, arena=footprint,
                                        labels=dataset.class_names)
        folder = os.path.join(export_dir, "micro")
        paths = [os.path.join(folder, f"{cname}_model_data.h"),
                 os.path.join(folder, f"{cname}_model_data.cc"),
                 os.path.join(folder, f"{cname}_op_resolver.h")]
        for path, text in zip(paths, (header, source, micro.op_resolver_header(content, cname))):
            fileio.write_text(path, text)
        if card is not None:
            fileio.write_json(card_path, {**card, "micro": {
                **section, **agreement, "files": [os.path.basename(p) for p in paths]}})
        print(f"{paths[0]}: flash {footprint['flash_bytes'] / 1024:.1f} KiB, tensor arena "
              f"{footprint['arena_bytes'] / 1024:.1f} KiB, TFLM top-1 = LiteRT on "
              f"{agreement['top1_agreement']:.2%} of {agreement['num_images']} test images")
        written += paths
    return written, problems


def micro_conversion(representative_dataset):
    """convert.to_tflite keyword arguments of a firmware model: full integer, calibrated."""
    return {"representative_dataset": representative_dataset, "rgb_input": False,
            "inference_input_type": "int8", "inference_output_type": "int8", "output": "logits"}
