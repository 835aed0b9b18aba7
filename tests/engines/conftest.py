"""The engine matrix: one lab with one guest per engine (xsclab.engines), the
engine-sensitive integration tests run against each. Every test here is marked
`lab`; when the lab cannot start (an engine's packages cannot be had, say) the
tests fail and say why. `make test-engines` runs this folder.

XSC_TEST_ENGINES (default: every engine but docker20, which the rest of the
integration suite runs on) chooses the guests, one per engine.
"""

import os
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.conftest import session_lab
from xsclab import labctl

HERE = Path(__file__).parent
MATRIX = ["docker26", "docker28", "podman4", "podman5", "podman5-rootless"]


def engines() -> List[str]:
    spec = os.environ.get("XSC_TEST_ENGINES", "")
    return [e.strip() for e in spec.split(",") if e.strip()] or MATRIX


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def engine_lab() -> Iterator[labctl.Lab]:
    """A lab with a guest per engine on two hosts (XSC_LAB_DIR, from guest
    XSC_TEST_FIRST), taken down at the end unless XSC_LAB_KEEP=1."""
    names = engines()
    yield from session_lab("the engine lab", len(names), 2, engine_spec=",".join(names))
