"""etcd3gw's watches against the etcr at argv[1]: events arrive one chunked line each."""
import signal
import sys

from etcd3gw.client import Etcd3Client

signal.alarm(20)  # a watch that never answers fails the script instead of hanging it
host, port = sys.argv[1].rsplit(":", 1)
client = Etcd3Client(host=host, port=int(port), protocol="http")

events, cancel = client.watch("wkey")
client.put("wkey", "1")
client.delete("wkey")
put, delete = next(events), next(events)
assert put["kv"]["key"] == b"wkey" and put["kv"]["value"] == b"1", put
assert "type" not in put and delete["type"] == "DELETE", (put, delete)
cancel()

client.put("wp/a", "x")
rev = int(client.get("wp/a", metadata=True)[0][1]["mod_revision"])
client.put("wp/b", "y")
client.put("wp/a", "z")
events, cancel = client.watch_prefix("wp/", start_revision=rev, prev_kv=True)
got = [next(events) for _ in range(3)]
assert [e["kv"]["key"] for e in got] == [b"wp/a", b"wp/b", b"wp/a"], got
assert got[2]["prev_kv"]["value"] == "eA==", got[2]
cancel()
print("etcd3gw watches ok")
