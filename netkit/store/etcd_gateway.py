"""etcd's HTTP/JSON gateway through etcd3gw, with failover between endpoints.

etcd3gw's client talks to one endpoint. `Gateway` keeps one per call (cheap:
a base URL, a timeout and the shared session) and does the failover: a call
goes to the current endpoint and, on a connection error, a timeout or an
etcd "unavailable" (no leader, request timed out, leader changed), moves on
to the next listed endpoint, round and round (a short pause after each full
round: an election may be under way) until the call's deadline; then it
raises ClusterUnavailable. One attempt gets at most a third of the
deadline, so a member that hangs (cut off from the majority: linearizable
reads wait for a leader) leaves time for the others. Every socket is opened
in the store's netns (netkit/kernel/netsock.py). The helpers below build
the gateway's JSON (keys and values base64, int64 as strings).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Iterator, Sequence

from netkit.errors import ClusterUnavailable, InternalError

CONNECT_TIMEOUT = 2.0    # s: one TCP connect to one endpoint


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def unb64(s: str | None) -> str:
    return base64.b64decode(s).decode() if s else ""


class _Retry(Exception):
    """This endpoint did not answer usefully: try the next one."""


class Gateway:
    """etcd3gw clients for the listed endpoints, with failover and a deadline per call."""

    def __init__(self, endpoints: Sequence[str], netns: str | None, timeout: float,
                 url: str) -> None:
        from netkit.kernel.netsock import session
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.url = url
        self.session = session(netns)
        self.current = 0
        self.calls = 0                      # round trips made (benchmarks)

    def unavailable(self, detail: str) -> ClusterUnavailable:
        return ClusterUnavailable(f"the swarm's cluster store {self.url} does not have a leader: "
                                  f"make sure more than half of its members are online"
                                  + (f" ({detail})" if detail else ""))

    def _client(self, endpoint: str, timeout: float) -> Any:
        import etcd3gw
        proto, _, hostport = endpoint.partition("://")
        host, _, port = hostport.rpartition(":")
        return etcd3gw.Etcd3Client(host=host.strip("[]"), port=int(port), protocol=proto,
                                   timeout=(min(CONNECT_TIMEOUT, timeout), timeout),  # type: ignore[arg-type]  # requests' (connect, read)
                                   api_path="/v3/", session=self.session)

    def _rotation(self, deadline: float) -> Iterator[tuple[int, float]]:
        """(endpoint index, time left) from the current endpoint on, round and round."""
        n, tried, start = len(self.endpoints), 0, self.current
        while True:
            left = deadline - time.monotonic()
            if tried and tried % n == 0:
                time.sleep(max(0.0, min(0.2, left - 0.05)))  # all failed: an election under way?
                left = deadline - time.monotonic()
            if left <= 0:
                return
            yield (start + tried) % n, left
            tried += 1

    def post(self, path: str, payload: dict, *, timeout: float | None = None) -> dict:
        from etcd3gw import exceptions as ex
        deadline = time.monotonic() + (timeout or self.timeout)
        per_try = max(1.0, (timeout or self.timeout) / 3)
        detail = "no endpoint answered"
        for i, left in self._rotation(deadline):
            client = self._client(self.endpoints[i], min(left, per_try))
            self.calls += 1
            try:
                result = client.post(client.get_url(path), json=payload)
                self.current = i
                return result
            except (ex.ConnectionFailedError, ex.ConnectionTimeoutError) as exc:
                detail = short(exc)
            except ex.Etcd3Exception as exc:
                text = short(exc)
                if not any(w in text for w in ("leader", "timed out", "unavailable", "stopped")):
                    raise InternalError(f"cluster store {self.url}: {text}") from exc
                detail = text
            except ValueError as exc:           # a cut-off reply
                detail = str(exc)
            except Exception as exc:            # requests' other transport errors
                if type(exc).__module__.split(".")[0] not in ("requests", "urllib3"):
                    raise
                detail = short(exc)
            self.current = (i + 1) % len(self.endpoints)
        raise self.unavailable(detail)

    def watch(self, key: str, start_revision: int, wait: float) -> list[dict] | None:
        """Events on `key` from `start_revision` on, waiting up to `wait` s: a list (one
        event, or [] when the watch was cancelled: compacted), None when nothing happened.
        ClusterUnavailable when no endpoint could be watched for the whole wait."""
        import requests
        deadline = time.monotonic() + wait
        payload = {"create_request": {"key": b64(key), "start_revision": str(start_revision)}}
        detail = "no endpoint answered"
        for i, left in self._rotation(deadline):
            self.calls += 1
            endpoint, established = self.endpoints[i], False
            try:
                with self.session.post(f"{endpoint}/v3/watch", json=payload, stream=True,
                                       timeout=(min(CONNECT_TIMEOUT, left), left)) as resp:
                    if resp.status_code != 200:
                        raise _Retry(f"{resp.status_code} {resp.reason}")
                    self.current, established = i, True
                    for line in resp.iter_lines():
                        msg = json.loads(line)
                        if "error" in msg:
                            raise _Retry(str(msg["error"].get("message")))
                        result = msg.get("result", {})
                        if result.get("events"):
                            return result["events"]
                        if result.get("canceled") or result.get("compact_revision"):
                            return []
                    raise _Retry("watch stream ended")
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if established and time.monotonic() >= deadline - 0.05:
                    return None                 # the wait is over, nothing happened
                detail = short(exc)
            except (_Retry, ValueError, requests.exceptions.RequestException) as exc:
                detail = short(exc)
            self.current = (i + 1) % len(self.endpoints)
        raise self.unavailable(detail)

    def txn(self, compare: list, success: list, failure: Sequence[Any] = (), **kw: Any) -> dict:
        return self.post("kv/txn", {"compare": compare, "success": success,
                                    "failure": list(failure)}, **kw)

    def range(self, key: str, *, prefix: bool = False, **kw: Any) -> dict:
        return self.post("kv/range", range_of(key, prefix), **kw)


def short(exc: BaseException) -> str:
    """One short line for a transport or etcd error (etcd3gw keeps the text in detail_text:
    the gateway's JSON {"error", "message", "code"} or the transport error's words)."""
    text = getattr(exc, "detail_text", None) or ""
    try:
        text = json.loads(text).get("message") or text
    except (ValueError, AttributeError):
        pass
    text = " ".join(f"{text} {exc}".split())
    for marker in ("Connection refused", "timed out", "No route to host", "Network is unreachable"):
        if marker in text:
            return marker.lower()
    return text[:160]


def range_of(key: str, prefix: bool = False) -> dict:
    out = {"key": b64(key)}
    if prefix:
        out["range_end"] = b64(key[:-1] + chr(ord(key[-1]) + 1))
    return out


def put(key: str, value: str, lease: int | None = None) -> dict:
    op: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        op["lease"] = str(lease)
    return {"request_put": op}


def delete(key: str) -> dict:
    return {"request_delete_range": {"key": b64(key)}}


def created(key: str, revision: int) -> dict:
    return {"key": b64(key), "result": "EQUAL", "target": "CREATE",
            "create_revision": str(revision)}


def kvs(response: dict) -> list[dict]:
    return response.get("kvs") or []
