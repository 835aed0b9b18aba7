"""Which guest addresses xscontainer tries, and in what order."""

from xscontainer.guest import candidate_addresses


def test_no_metrics_or_empty_map_gives_nothing():
    assert candidate_addresses(None) == []
    assert candidate_addresses({}) == []


def test_ipv4_only_and_duplicates_tried_once():
    networks = {"0/ip": "10.0.0.5", "0/ipv4/0": "10.0.0.5", "0/ipv6/0": "fe80::1",
                "0/ipv6/1": "2001:db8::5"}
    assert candidate_addresses(networks) == ["10.0.0.5"]


def test_link_local_first_then_by_device_number():
    networks = {
        "10/ip": "192.168.10.2",
        "2/ip": "192.168.2.2",
        "1/ip": "169.254.0.2",
        "0/ip": "10.0.0.5",
        "0/ipv4/1": "10.0.1.5",
    }
    assert candidate_addresses(networks) == [
        "169.254.0.2", "10.0.0.5", "10.0.1.5", "192.168.2.2", "192.168.10.2"]


def test_garbage_values_are_ignored():
    networks = {"0/ip": "", "1/ip": "not-an-ip", "2/ip": " 10.1.1.1 ", "3/ip": "999.1.1.1"}
    assert candidate_addresses(networks) == ["10.1.1.1"]
