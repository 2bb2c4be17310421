"""The package's layout as docs/developers.md draws it: every module is named in the layout
tree, and a module over MAX_LINES lines says why in its docstring."""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tftool")
MAX_LINES = 400
REASON = "Over 400 lines because"


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def _layout_block():
    with open(os.path.join(ROOT, "docs", "developers.md"), encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"## Layout\n.*?```\n(tftool/\n.*?)```", text, re.S)
    assert match, "docs/developers.md has no layout tree under '## Layout'"
    return match.group(1)


def test_every_module_and_folder_is_in_the_layout_tree():
    block = _layout_block()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", block))
    missing = []
    for path in _modules():
        rel = os.path.relpath(path, PACKAGE)
        stem = os.path.splitext(os.path.basename(rel))[0]
        folder = os.path.dirname(rel)
        if stem == "__init__":
            if folder and os.path.basename(folder) + "/" not in block:
                missing.append(folder + "/")
            continue
        if stem not in words:
            missing.append(rel)
    assert not missing, (f"modules not named in docs/developers.md's layout tree: {missing}; "
                         f"add a line saying what each holds")


def test_a_module_over_the_limit_says_why():
    long_silent = []
    for path in _modules():
        with open(path, encoding="utf-8") as f:
            source = f.read()
        lines = source.count("\n")
        if lines > MAX_LINES and REASON not in (ast.get_docstring(ast.parse(source)) or ""):
            long_silent.append(f"{os.path.relpath(path, ROOT)} ({lines} lines)")
    assert not long_silent, (f"split these by job, or say in the module docstring "
                             f"'{REASON} ...': {long_silent}")
