"""The local cluster on a real Ray head (the session's test cluster on test ports)."""

import socket

import pytest

from cluster.local import ClusterError, LocalCluster
from cluster.status import render_status
from tests import conftest

pytestmark = pytest.mark.integration


def test_up_is_idempotent_and_status_shows_the_node(ray_cluster):
    info = ray_cluster.up()
    assert info["already_up"] is True
    text = render_status(ray_cluster)
    assert "cluster: up" in text and "ALIVE" in text and "head" in text
    assert "resources in use: CPU" in text


def test_dashboard_binds_loopback_only_and_requires_the_token(ray_cluster):
    import psutil

    listening = [
        c
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == ray_cluster.dashboard_port
    ]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{ray_cluster.dashboard_url}/api/version", timeout=5)
    assert info.value.code == 401


def test_a_taken_port_is_a_clear_error_not_a_moved_port(ray_cluster, tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        other = LocalCluster(
            gcs_port=conftest.free_port(),
            dashboard_port=port,
            client_port=conftest.free_port(),
            agent_port=conftest.free_port(),
            root=tmp_path,
        )
        with pytest.raises(ClusterError) as info:
            other.up()
    msg = str(info.value)
    assert f"port {port} (dashboard / Jobs API) is already in use by pid" in msg
    assert "ONPREM_DASHBOARD_PORT" in msg
    assert not other.gcs_running()


def test_down_stops_only_its_own_cluster(ray_cluster, tmp_path):
    other = LocalCluster(
        gcs_port=conftest.free_port(),
        dashboard_port=conftest.free_port(),
        client_port=conftest.free_port(),
        agent_port=conftest.free_port(),
        num_cpus=1,
        root=tmp_path,
    )
    other.up()
    try:
        assert other.is_up()
        assert other.down() > 0
        assert not other.gcs_running()
        assert ray_cluster.is_up()
    finally:
        other.down()
