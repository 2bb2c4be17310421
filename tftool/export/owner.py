"""Which model an export folder belongs to, so one model's files never land among another's.

An export folder (EXPORT_DIR) holds one model's files: <name>_<variant>.tflite and their model
cards, labels.txt, micro/, and the benchmark's report.md describing them. Exporting a second
model into it used to rewrite labels.txt under the first model's files and leave report.md
describing a mix. tftool-export records its source in EXPORT_DIR/SOURCE_FILE and refuses
(before writing anything) to export another model there; tftool-benchmark refuses to measure
a folder another workdir exported.
"""
import glob
import os

from tftool import UserError, fileio, stages

SOURCE_FILE = "tftool_source.json"


def _names_present(export_dir, name):
    """The <name> prefixes of the EXPORT_DIR/<name>_<variant>.tflite files there (any
    variant the registry knows); `name`'s own files are recognized first (a model named
    x_qat has x_qat_int8, which read alone would be model x's qat_int8)."""
    # longest first: x_qat_int8 is model x's qat_int8, not model x_qat's int8
    variants = sorted([*stages.VARIANTS, stages.SELECTIVE_VARIANT], key=len, reverse=True)
    own = {f"{name}_{v}" for v in variants}
    names = set()
    for path in glob.glob(os.path.join(glob.escape(export_dir), "*.tflite")):
        stem = os.path.basename(path)[:-len(".tflite")]
        if stem in own:
            names.add(name)
            continue
        for variant in variants:
            if stem.endswith("_" + variant):
                names.add(stem[:-len(variant) - 1])
                break
    return names


def _same_dir(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def check(export_dir, workdir, name, command="tftool-export"):
    """Raises UserError (one line, with the fix) when EXPORT_DIR holds another model's files.

    Another model: .tflite files named for another <name>, or a SOURCE_FILE recording another
    workdir that still has a float model (a workdir that is gone hands its folder over; a
    workdir copied with its export folder is the same one).
    Args:
      export_dir, workdir: folders (need not exist); name: the <dataset>_<model> file prefix.
      command: the entry point, for the message.
    Raises:
      UserError: the folder belongs to another model; or SOURCE_FILE is damaged.
    """
    if not os.path.isdir(export_dir):
        return
    source = fileio.read_json_object(
        os.path.join(export_dir, SOURCE_FILE),
        fix=f"delete it if {export_dir} holds only tftool's files") or {}
    other_names = sorted(_names_present(export_dir, name) - {name})
    if source.get("name") and source["name"] != name:
        other_names = sorted(set(other_names) | {source["name"]})
    other_workdir = source.get("workdir")
    relative = source.get("workdir_from_export_dir")  # still right when both were copied
    if other_workdir and (_same_dir(other_workdir, workdir)
                          or (relative and _same_dir(
                              os.path.join(os.path.realpath(export_dir), relative), workdir))
                          or not stages.has_model(other_workdir, "float")):
        other_workdir = None
    if not other_names and not other_workdir:
        return
    whose = (f"the files of {', '.join(other_names)}" if other_names
             else f"the files exported from {other_workdir}")
    suggestion = os.path.join(export_dir, name)
    raise UserError(f"{export_dir} holds {whose}, not of {name} from {workdir}; {command} "
                    f"would mix them (labels.txt, report.md): use a folder of its own, "
                    f"--export_dir={suggestion} (make: EXPORT_DIR={suggestion}), or delete "
                    f"{export_dir} first")


def record(export_dir, workdir, name, dataset):
    """Writes EXPORT_DIR/SOURCE_FILE: {"name", "workdir" (absolute),
    "workdir_from_export_dir" (relative: a project copied elsewhere, workdir and export folder
    together, still matches), "dataset"}."""
    fileio.write_json(os.path.join(export_dir, SOURCE_FILE),
                      {"name": name, "workdir": os.path.abspath(workdir),
                   "workdir_from_export_dir": os.path.relpath(os.path.realpath(workdir),
                                                              os.path.realpath(export_dir)),
                   "dataset": dataset})
