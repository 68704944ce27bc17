"""etcd3gw's leases and locks (a lock is a leased key, taken by a txn) against the etcr at
argv[1]."""
import sys

from etcd3gw.client import Etcd3Client

host, port = sys.argv[1].rsplit(":", 1)
client = Etcd3Client(host=host, port=int(port), protocol="http")

lease = client.lease(ttl=30)
assert lease.id > 0
assert client.put("leased", "v", lease=lease) is True
assert 0 < lease.ttl() <= 30
assert 0 < lease.refresh() <= 30
assert lease.keys() == [b"leased"], lease.keys()
assert lease.revoke() is True
assert client.get("leased") == []

lock = client.lock("job", ttl=30)
assert lock.acquire() is True
assert lock.is_acquired()
assert client.lock("job", ttl=30).acquire() is False
assert 0 < lock.refresh() <= 30
assert lock.release() is True
assert not lock.is_acquired()
with client.lock("job", ttl=30) as again:
    assert again.is_acquired()
print("etcd3gw leases ok")
