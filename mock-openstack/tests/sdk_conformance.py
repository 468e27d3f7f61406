"""openstacksdk against a running mock: create, wait, list, delete, wait.

Usage: python sdk_conformance.py CLOUD   (OS_CLIENT_CONFIG_FILE points at
the clouds.yaml). Exits non-zero with a message on the first failure.
"""
import sys

import openstack


def main(cloud: str) -> None:
    conn = openstack.connect(cloud=cloud)
    server = conn.create_server(
        "sdk-vm1",
        image="cirros-0.6.2-x86_64-disk",
        flavor="m1.tiny",
        network="private",
        wait=False,
    )
    server = conn.wait_for_server(server, timeout=60, auto_ip=False)
    assert server.status == "ACTIVE", f"status {server.status}"
    names = [s.name for s in conn.list_servers()]
    assert "sdk-vm1" in names, f"sdk-vm1 not listed: {names}"
    assert conn.get_server("sdk-vm1") is not None
    assert conn.delete_server("sdk-vm1", wait=True, timeout=60), "delete_server returned False"
    conn.compute.wait_for_delete(server, wait=60)
    assert conn.get_server("sdk-vm1") is None, "server still visible after delete"
    # Not found is a clean 404, never a 500.
    assert conn.compute.find_server("no-such-server") is None
    print("sdk conformance OK")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "devstack")
