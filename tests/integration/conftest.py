"""Integration tests run through the lab (the xsclab package in tests/lab),
exactly as a client would; every one of them is marked `lab`. The session's
`lab` fixture is in tests/conftest.py.
"""

from pathlib import Path
from typing import Any, Iterator, List

import pytest

from xsclab import labctl

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="module")
def xs(lab: labctl.Lab) -> Iterator[Any]:
    """The XenAPI of a root session of the test itself (as XenCenter would hold one)."""
    session = lab.xapi()
    yield session.xenapi
    session.xenapi.session.logout()
