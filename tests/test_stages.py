"""The stage registry is the one description of the stages: the Makefile, export's variants
and the error messages agree with it."""
import os
import re

import pytest

from conftest import REPO
from tftool import stages


def makefile_targets():
    """{stage: (input stage or None, recipe line)} of the Makefile's model.h5 file targets."""
    text = open(os.path.join(REPO, "Makefile")).read()
    targets = {}
    for m in re.finditer(r"^\$\(call STAGE_MODEL,(\w+)\):\s*(?:\$\(call STAGE_MODEL,(\w+)\)|\| install)\n"
                         r"\t(.+)$", text, re.M):
        targets[m.group(1)] = (m.group(2), m.group(3))
    return text, targets


def test_makefile_file_targets_agree_with_the_registry():
    text, targets = makefile_targets()
    assert set(targets) == {"float", "qat", "pruned", "pqat", "student", "clustered", "cqat",
                            "pruned_clustered", "pcqat", "pruned_2by4"}
    for name, (input_stage, recipe) in targets.items():
        stage = stages.get(name)
        assert input_stage == stage.input, name
        command, *options = stage.command.split()
        assert f"$(RUN){command} " in recipe, (name, recipe)
        assert all(o in recipe for o in options), (name, recipe)
    listed = [s for pattern in (r"STAGE_MODELS := \$\(foreach s,([\w ]+),",
                                r"COMPRESS_MODELS := \$\(foreach s,([\w ]+),")
              for s in re.search(pattern, text).group(1).split()]
    assert sorted(listed) == sorted(targets)
    for stage in stages.REGISTRY:  # every stage's make target exists and runs its command
        target, *assignments = stage.make_target.split()
        recipe = re.search(rf"^{target}: install(?: *##.*)?\n((?:\t.+\n)+)", text, re.M)
        assert recipe, stage.name
        command, *options = stage.command.split()
        assert any(command in line and all(o in line or any(o in a for a in assignments)
                                           for o in options)
                   for line in recipe.group(1).splitlines()), stage.name


def test_every_variant_belongs_to_one_stage_and_a_known_mode():
    from tftool.export import convert

    assert len(stages.VARIANTS) == sum(len(s.variants) for s in stages.REGISTRY)
    for variant, (stage, mode) in stages.VARIANTS.items():
        assert mode in convert.MODES and stages.get(stage).variants[variant] == mode
        assert stages.get(stages.get(stage).gate)  # the gate's reference is a stage
    assert stages.fits("qat_int8", True) and not stages.fits("qat_int8", False)
    assert stages.fits("student_int8", False) and not stages.fits("student_int8", True)


def test_unknown_names_list_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: float, qat, pruned, pqat"):
        stages.stage_dir("w", "nope")
    with pytest.raises(ValueError, match="allowed: float32, float16"):
        stages.variant_of("int4")


def test_missing_model_message_names_the_command():
    line = stages.missing_model_message("W", "pqat", "variant pqat_int8")
    assert line == ("variant pqat_int8 needs W/pqat/model.h5: run `tftool-quantize --from=pruned "
                    "--workdir=W` (make pqat) first")
