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
