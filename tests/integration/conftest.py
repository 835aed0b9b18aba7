"""Integration tests run through the lab (the xsclab package in tests/lab),
exactly as a client would; every one of them is marked `lab`. The session's
`lab` fixture is in tests/conftest.py.
"""

from pathlib import Path
from typing import List

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.lab)
