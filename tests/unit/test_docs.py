"""The README's reference tables say what the code does."""

import os
import re

from xscontainer import errors, plugin

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "README.md")


def _section(title: str) -> str:
    with open(README) as f:
        text = f.read()
    start = text.index("## " + title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_every_error_code_is_documented_and_nothing_else():
    table = _section("The plugin: functions and results")
    documented = set(re.findall(r"`(XSCONTAINER_[A-Z_]+)`", table))
    documented.discard("XSCONTAINER_MONITOR_FAILED")  # a message name, not an error code
    assert documented == set(errors.CODES)


def test_every_plugin_function_is_documented_with_its_arguments():
    table = _section("The plugin: functions and results")
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for fn in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[fn] = set(re.findall(r"`([a-z]+)`", cells[1]))
    assert set(rows) == set(plugin.FUNCTIONS)
    for fn, (required, _handler) in plugin.FUNCTIONS.items():
        assert rows[fn] == set(required), fn


def _hacking_layout() -> str:
    with open(os.path.join(os.path.dirname(README), "HACKING.md")) as f:
        text = f.read()
    start = text.index("## Layout")
    return text[start:text.index("\n## ", start + 1)]


def test_hacking_layout_names_every_module_and_test_folder():
    repo = os.path.dirname(README)
    layout = _hacking_layout()
    words = set(re.findall(r"[A-Za-z0-9_.-]+/?", layout))
    missing = []
    package = os.path.join(repo, "lib", "xscontainer")
    for folder, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(folder, package)
        if rel != ".":
            if os.path.basename(folder) + "/" not in words:
                missing.append(rel + "/")
            continue  # a subpackage's modules are named without .py
        missing += [name for name in files
                    if name.endswith(".py") and name != "__init__.py" and name not in words]
    for folder, _dirs, files in os.walk(package):
        if os.path.relpath(folder, package) == "." or "__pycache__" in folder:
            continue
        for name in files:
            module = name[:-3]
            if name.endswith(".py") and name != "__init__.py" and not (
                    module in words or name in words):
                missing.append(os.path.join(os.path.relpath(folder, package), name))
    tests = os.path.join(repo, "tests")
    missing += ["tests/%s/" % d for d in sorted(os.listdir(tests))
                if os.path.isdir(os.path.join(tests, d)) and d != "__pycache__"
                and "tests/%s/" % d not in layout]
    assert missing == []
