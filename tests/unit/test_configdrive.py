"""The cloud-config text: placeholders, host names, the key line, the template."""

from pathlib import Path

import pytest
import yaml

from xscontainer import errors
from xscontainer.configdrive import cloudconfig

VM_UUID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
KEY = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7+/xyz="


def custom(text: str, hin: "str | None" = None, key: "str | None" = KEY) -> str:
    return cloudconfig.customize(text, "myhost", key, hin)


# -- substitution ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        ("hostname: %VMNAMETOHOSTNAME%", "hostname: myhost"),
        ("hostname: %XSVMNAMETOHOSTNAME%", "hostname: myhost"),
        ("- ssh-rsa %CONTAINERRSAPUB%", "- ssh-rsa " + KEY),
        ("- ssh-rsa %XSCONTAINERRSAPUB%", "- ssh-rsa " + KEY),
        ("a %VMNAMETOHOSTNAME% b %VMNAMETOHOSTNAME%", "a myhost b myhost"),
        ("%VMNAMETOHOSTNAME%%CONTAINERRSAPUB%", "myhost" + KEY),
        ("no placeholders at all", "no placeholders at all"),
        ("%UNKNOWN% and %XSVMTOHOST% stay", "%UNKNOWN% and %XSVMTOHOST% stay"),
        ("100% sure, 50%", "100% sure, 50%"),
    ],
)
def test_placeholders(given: str, expected: str) -> None:
    assert custom(given) == expected


@pytest.mark.parametrize("hin", ["1", "7"])
def test_hin_device_new_and_legacy(hin: str) -> None:
    assert custom("eth%HIN% eth%XSHIN%", hin=hin) == "eth%s eth%s" % (hin, hin)


def test_hin_placeholder_left_alone_without_a_hin_vif() -> None:
    # nothing sensible to put there; outside a block it stays as written
    assert custom("eth%HIN%") == "eth%HIN%"


def test_key_placeholder_left_alone_without_a_key() -> None:
    assert custom("- ssh-rsa %CONTAINERRSAPUB%", key=None) == "- ssh-rsa %CONTAINERRSAPUB%"


BLOCKS = (
    "units:\n"
    "  - name: a\n"
    "  %HINEXISTS%\n"
    "  - name: eth%HIN%\n"
    "  %ENDHINEXISTS%\n"
    "  - name: b\n"
    "  %XSHINEXISTS%\n"
    "  - name: legacy%XSHIN%\n"
    "  %XSENDHINEXISTS%\n"
    "  - name: c\n"
    "  %XSHINEXISTS%\n"
    "  - name: older%XSHIN%\n"
    "  %ENDXSHINEXISTS%\n"
    "end\n"
)


def test_blocks_kept_without_their_markers_when_the_vm_has_a_hin_vif() -> None:
    assert custom(BLOCKS, hin="2") == (
        "units:\n"
        "  - name: a\n"
        "  - name: eth2\n"
        "  - name: b\n"
        "  - name: legacy2\n"
        "  - name: c\n"
        "  - name: older2\n"
        "end\n"
    )


def test_every_block_removed_on_its_own_without_a_hin_vif() -> None:
    # non-greedy: the text between blocks (b, c) stays
    assert custom(BLOCKS) == "units:\n  - name: a\n  - name: b\n  - name: c\nend\n"


def test_blocks_with_crlf_newlines() -> None:
    text = BLOCKS.replace("\n", "\r\n")
    assert custom(text) == "units:\r\n  - name: a\r\n  - name: b\r\n  - name: c\r\nend\r\n"
    assert custom(text, hin="3").count("\r\n") == 8
    assert "%" not in custom(text, hin="3")


def test_inline_markers_only_remove_themselves() -> None:
    text = "x: [a%HINEXISTS%, eth%HIN%%ENDHINEXISTS%]\ny: 1\n"
    assert custom(text) == "x: [a]\ny: 1\n"
    assert custom(text, hin="4") == "x: [a, eth4]\ny: 1\n"


def test_block_at_the_very_end_without_a_newline() -> None:
    text = "a: 1\n%HINEXISTS%\nb: %HIN%\n%ENDHINEXISTS%"
    assert custom(text) == "a: 1\n"
    assert custom(text, hin="0") == "a: 1\nb: 0\n"


def test_stray_end_marker_is_dropped() -> None:
    assert custom("a: 1\n  %ENDHINEXISTS%\nb: 2\n") == "a: 1\nb: 2\n"
    assert custom("a: 1\n%XSENDHINEXISTS%\n", hin="1") == "a: 1\n"


def test_unclosed_block_is_refused_with_a_clear_error() -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        custom("a: 1\n%HINEXISTS%\nb: 2\n")
    assert "%ENDHINEXISTS%" in raised.value.message


@pytest.mark.parametrize(
    "given, expected",
    [
        ("line1%BR%line2", "line1\r\nline2"),
        ("a%BR%%BR%b", "a\r\n\r\nb"),
        ("lf\nonly", "lf\nonly"),
        ("crlf\r\nkept", "crlf\r\nkept"),
        ("no newline", "no newline"),
    ],
)
def test_br_becomes_crlf(given: str, expected: str) -> None:
    assert cloudconfig.decode_configuration(given) == expected


def test_br_encoded_block_resolves_like_the_plain_one() -> None:
    encoded = "a: 1%BR%%HINEXISTS%%BR%b: eth%HIN%%BR%%ENDHINEXISTS%%BR%c: 2"
    text = cloudconfig.decode_configuration(encoded)
    assert custom(text) == "a: 1\r\nc: 2"
    assert custom(text, hin="1") == "a: 1\r\nb: eth1\r\nc: 2"


# -- host names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("xsc-vm1", "xscvm1"),
        ("Web Server #2", "webserver2"),
        ("CoreOS_Node.01", "coreosnode01"),
        ("Ünïcödé VM", "ncdvm"),
        ("a" * 80, "a" * 63),
        ("123", "123"),
    ],
)
def test_hostname_from_name(name: str, expected: str) -> None:
    assert cloudconfig.hostname_from_name(name, VM_UUID) == expected


@pytest.mark.parametrize("name", ["", "---", "日本語", "  "])
def test_hostname_falls_back_to_the_uuid(name: str) -> None:
    hostname = cloudconfig.hostname_from_name(name, VM_UUID)
    assert hostname == "vm0f1e2d3c"


# -- the key line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ssh_authorized_keys:\n  - ssh-rsa %CONTAINERRSAPUB%\n", True),
        ("ssh_authorized_keys:\n  - ssh-rsa %XSCONTAINERRSAPUB%\n", True),
        ("ssh_authorized_keys:\r\n  - ssh-rsa %CONTAINERRSAPUB%\r\n", True),
        ("- ssh-rsa %CONTAINERRSAPUB%", True),  # first line counts too
        ("keys:\n\t-  ssh-rsa  %CONTAINERRSAPUB%\n", True),
        ("ssh_authorized_keys:\n  # - ssh-rsa %CONTAINERRSAPUB%\n", False),
        ("ssh_authorized_keys:\n#  - ssh-rsa %CONTAINERRSAPUB%\n", False),
        ("  - ssh-rsa AAAAB3... someone\n", False),
        ("x: - ssh-rsa %CONTAINERRSAPUB%\n", False),
        ("", False),
    ],
)
def test_uncommented_key_line(text: str, expected: bool) -> None:
    assert cloudconfig.has_uncommented_key_line(text) is expected


def test_key_body() -> None:
    assert cloudconfig.key_body("ssh-rsa %s xscontainer@host" % KEY) == KEY
    for bad in ("", "ssh-rsa", "ssh-rsa not/base64!", "ssh-rsa AAAA%BR%"):
        with pytest.raises(errors.ConfigDriveError):
            cloudconfig.key_body(bad)


# -- the template ---------------------------------------------------------------------


def template() -> str:
    return Path(cloudconfig.PACKAGED_TEMPLATE).read_text()


def test_template_has_the_placeholders_and_the_key_line() -> None:
    text = template()
    assert text.startswith("#cloud-config\n")
    assert "\r" not in text
    for placeholder in ("%VMNAMETOHOSTNAME%", "%CONTAINERRSAPUB%", "%HINEXISTS%",
                        "%ENDHINEXISTS%", "%HIN%"):
        assert placeholder in text
    assert "\n  - ssh-rsa %CONTAINERRSAPUB%\n" in text
    assert cloudconfig.has_uncommented_key_line(text)
    for obsolete in ("etcd2", "fleet", "etcd-member"):
        assert obsolete not in text


@pytest.mark.parametrize("hin", [None, "1"])
def test_template_is_valid_yaml_after_substitution(hin: "str | None") -> None:
    for text in (template(), cloudconfig.default_configuration(use_hin=True)):
        data = yaml.safe_load(custom(text, hin=hin))
        assert data["hostname"] == "myhost"
        assert data["ssh_authorized_keys"] == ["ssh-rsa " + KEY]
        units = {unit["name"]: unit for unit in data["coreos"]["units"]}
        assert "docker.service" in units
        agent = units["xe-linux-distribution.service"]
        assert "ExecStart=/media/configdrive/agent/xe-daemon" in agent["content"]
        if hin:
            network = units["00-eth1.network"]
            assert network["runtime"] is True
            assert "Name=eth1 enX1" in network["content"]
            assert "UseRoutes=false" in network["content"]
        else:
            assert [n for n in units if n.endswith(".network")] == []
        files = {f["path"]: f for f in data["write_files"]}
        assert "arp_notify = 1" in files["/etc/sysctl.d/10-enable-arp-notify.conf"]["content"]


def test_default_without_hin_has_no_block_and_is_valid_yaml() -> None:
    text = cloudconfig.default_configuration(use_hin=False)
    assert "HIN" not in text
    assert "%VMNAMETOHOSTNAME%" in text and "%CONTAINERRSAPUB%" in text
    assert text.rstrip("\n").endswith("# Template loaded from %s" % cloudconfig.PACKAGED_TEMPLATE)
    data = yaml.safe_load(custom(text))
    assert [u["name"] for u in data["coreos"]["units"]] == [
        "docker.service", "xe-linux-distribution.service"]


def test_default_with_hin_keeps_the_markers_for_create() -> None:
    text = cloudconfig.default_configuration(use_hin=True)
    assert "%HINEXISTS%" in text and "%ENDHINEXISTS%" in text


def test_admin_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XSCONTAINER_FILES_DIR", str(tmp_path))
    assert cloudconfig.template_path() == cloudconfig.PACKAGED_TEMPLATE
    override = tmp_path / "cloud-config.template"
    override.write_bytes(b"#cloud-config\r\nhostname: %VMNAMETOHOSTNAME%\r\n"
                         b"%HINEXISTS%\r\nx: %HIN%\r\n%ENDHINEXISTS%\r\n")
    assert cloudconfig.template_path() == str(override)
    text = cloudconfig.default_configuration(use_hin=False)
    assert text == ("#cloud-config\nhostname: %VMNAMETOHOSTNAME%\n\n"
                    "# Template loaded from " + str(override) + "\n")
    override.write_text("")
    assert cloudconfig.load_template()[1] == cloudconfig.PACKAGED_TEMPLATE
