"""Which tree the lab runs: the source tree, or with XSC_LAB_INSTALL_ROOT (make
test-installed) the RPM installed into a scratch root. Proves the switch takes
effect: the simulator serves that tree's plugin, dom0 processes import the
package from it, and the plugin found there answers."""

import os
import re
from pathlib import Path

import pytest
import XenAPI

from xsclab import labctl, labenv


def expected_tree() -> labenv.Tree:
    root = os.environ.get("XSC_LAB_INSTALL_ROOT")
    if not root:
        return labenv.Tree(str(Path(labenv.REPO, "plugins")), [str(Path(labenv.REPO, "lib"))],
                           str(Path(labenv.REPO, "scripts")))
    root = os.path.abspath(root)
    (sitelib,) = sorted(Path(root, "usr", "lib").glob("python3*/site-packages"))
    return labenv.Tree(os.path.join(root, "etc/xapi.d/plugins"), [str(sitelib)],
                       os.path.join(root, "usr/bin"))


def test_the_lab_runs_the_selected_tree(lab: labctl.Lab) -> None:
    want = expected_tree()
    got = labenv.tree()
    assert (got.plugins_dir, got.pythonpath, got.bin_dir) == (
        want.plugins_dir, want.pythonpath, want.bin_dir)
    assert os.access(os.path.join(want.plugins_dir, "xscontainer"), os.X_OK)

    # the simulator of this lab serves that tree's plugins (its log says which folder)
    log = Path(labenv.lab_dir(), "xapi.log").read_text(errors="replace")
    serving = re.findall(r"serving .* plugins (\S+)\)", log)
    assert serving and serving[-1] == want.plugins_dir, serving[-3:]

    # dom0 processes import the package from that tree
    host = lab.hosts[0].uuid
    code = "import xscontainer, XenAPIPlugin; print(xscontainer.__file__)"
    ran = lab.dom0_run(host, ["python3", "-c", code], timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().startswith(want.pythonpath[0] + os.sep), ran.stdout
    env = lab.dom0_env(host)
    assert env["PATH"].split(":")[0] == want.bin_dir

    # the plugin found there answers: a call with a missing argument is refused by
    # the product's own code (XSCONTAINER_* failure), not by the lab
    with pytest.raises(XenAPI.Failure) as e:
        lab.call_plugin(host, "register", {})
    assert str(e.value.details[0]).startswith("XSCONTAINER_"), e.value.details


def test_installed_programs_run_on_the_labs_dom0_python(lab: labctl.Lab) -> None:
    """An installed program's shebang is dom0's /usr/bin/python3; in the lab it runs
    on the lab's dom0 interpreter (python_bin_dir), with the RPM's own flags."""
    tree = labenv.tree()
    programs = sorted(p for p in Path(tree.bin_dir).iterdir() if os.access(p, os.X_OK))
    plugin = Path(tree.plugins_dir, "xscontainer")
    env = lab.dom0_env(lab.hosts[0].uuid)
    for path in [plugin, *programs]:
        argv = labenv.dom0_argv([str(path)], env)
        first = path.read_text().splitlines()[0]
        if os.environ.get("XSC_LAB_INSTALL_ROOT"):
            assert first.startswith("#!/usr/bin/python3"), (path, first)
            assert argv[0] == os.path.join(labenv.python_bin_dir(), "python3"), argv
            assert argv[-1] == str(path)
        else:
            assert first == "#!/usr/bin/env python3", (path, first)
            assert argv == [str(path)]
