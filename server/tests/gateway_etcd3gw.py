"""OpenStack's etcd3gw client against the etcr at the endpoint given as argv[1].

Covers what needs the KV, Cluster and Maintenance services. Leases, locks and watches
(etcd3gw's lease(), lock(), watch*()) wait for etcr's Lease and Watch services.
"""
import sys

from etcd3gw.client import Etcd3Client

host, port = sys.argv[1].rsplit(":", 1)
client = Etcd3Client(host=host, port=int(port), protocol="http")

assert client.api_path == "/v3/", client.api_path
assert client.put("foo", "bar") is True
assert client.get("foo") == [b"bar"]
assert client.get("missing") == []

for key, value in [("dir/a", "1"), ("dir/b", "2"), ("dir/c", "3"), ("dis", "x")]:
    client.put(key, value)
pairs = client.get_prefix("dir/", sort_order="descend", sort_target="key")
assert [v for v, _ in pairs] == [b"3", b"2", b"1"], pairs
assert [m["key"] for _, m in pairs] == [b"dir/c", b"dir/b", b"dir/a"], pairs
value, meta = client.get("foo", metadata=True)[0]
assert value == b"bar" and meta["version"] == "1", meta

assert client.create("new", "v1") is True
assert client.create("new", "v2") is False
assert client.replace("new", "v1", "v3") is True
assert client.replace("new", "v1", "v4") is False
assert client.get("new") == [b"v3"]

assert client.delete("foo") is True
assert client.delete("foo") is False
assert client.get("foo") == []
assert client.delete_prefix("dir/") is True
assert client.get_prefix("dir/") == []
assert client.get("dis") == [b"x"]

members = client.members()
assert len(members) == 1 and members[0]["clientURLs"] == ["http://" + sys.argv[1]], members
assert client.status()["version"] == "3.4.0"
print("etcd3gw ok")
