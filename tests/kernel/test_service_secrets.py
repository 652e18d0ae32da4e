"""Swarm secrets and configs on simulated nodes: the managers' API and CLI, the sealed store,
the cluster key reaching a node that joins later, and what a task container sees.

Node m is the manager, w a worker (joined by naming m); x joins later with a token over
the LAN (the key comes with the manager agent's join reply).
"""

from __future__ import annotations

import json
import os

import pytest

from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from netkit.services import secrets as sealing
from netkit.services.model import FileRef, Service, ServiceSpec, new_object_id, put_service
from netkit.specs import ContainerSpec
from netkit.swarm import NOT_IN_SWARM, WORKER_VIEW
from tests.kernel.helpers import swarm_of_three

pytestmark = pytest.mark.root
IPS = {"a": "192.168.77.30", "b": "192.168.77.31", "c": "192.168.77.32"}
VALUE = b"hunter2-very-secret\n"
CONF = b"listen 8080\n"


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    with swarm_of_three(host, netkit_dirs, "192.168.77.0/24", IPS) as (engines, names, lan, cid):
        yield {"names": names, "lan": lan, "cid": cid, "dirs": netkit_dirs, **engines}


def _cluster_file(sw) -> bytes:
    path = os.path.join(sw["dirs"][0], "cluster", f"{sw['cid']}.db")
    data = b""
    for suffix in ("", "-wal"):
        if os.path.exists(path + suffix):
            with open(path + suffix, "rb") as f:
                data += f.read()
    return data


def test_library_create_ls_inspect_rm_and_errors(sw, node):
    m, w = sw["a"], sw["b"]
    s = m.secret_create("db_pw", VALUE, {"env": "test"})
    cfg = m.config_create("app.conf", CONF)
    try:
        assert len(s.id) == 25 and [x.name for x in m.secrets()] == ["db_pw"]
        assert m.secret("db_pw") == m.secret(s.id) == m.secret(s.id[:6])
        assert sealing.inspect_json("secret", m.secret("db_pw"))["Spec"] == \
            {"Name": "db_pw", "Labels": {"env": "test"}}
        assert m.config("app.conf").data == "bGlzdGVuIDgwODAK"
        with pytest.raises(AlreadyExists, match="^secret db_pw already exists$"):
            m.secret_create("db_pw", b"other")
        with pytest.raises(InvalidArgument, match="^invalid name, only 64"):
            m.secret_create("bad name", b"x")
        with pytest.raises(InvalidArgument, match="less than 512000 bytes$"):
            m.config_create("big", b"x" * 512000)
        with pytest.raises(NotFound, match="^secret nope not found$"):
            m.secret("nope")
        with pytest.raises(Forbidden) as exc:
            w.secrets()
        assert str(exc.value) == WORKER_VIEW
        with pytest.raises(Conflict) as exc:
            node.secret_create("x", b"x")
        assert str(exc.value) == NOT_IN_SWARM
        # no plaintext in the cluster store's files, the sealed form in the object
        assert VALUE.strip() not in _cluster_file(sw)
        assert m.secret("db_pw").data.startswith("v1:")
        # in use by a service: refused, Docker's words
        spec = ServiceSpec("web", ("sleep", "1"), secrets=(FileRef("db_pw", "db_pw"),),
                           configs=(FileRef("app.conf", "/app.conf"),))
        svc = Service(new_object_id(), spec)
        store = m.cluster.store()
        with store.transaction() as c:
            put_service(c, svc)
        try:
            with pytest.raises(InvalidArgument) as exc:
                m.secret_remove("db_pw")
            assert str(exc.value) == "secret 'db_pw' is in use by the following service: web"
            with pytest.raises(InvalidArgument, match="^config 'app.conf' is in use by the "
                                                      "following service: web$"):
                m.config_remove(cfg.id)
        finally:
            with store.transaction() as c:
                c.delete_object("service", svc.id)
    finally:
        for fn, ref in ((m.secret_remove, "db_pw"), (m.config_remove, "app.conf")):
            try:
                fn(ref)
            except NotFound:
                pass
    assert m.secrets() == [] and m.configs() == []


def test_cli(sw, cli, tmp_path):
    n = sw["names"]
    src = tmp_path / "pw"
    src.write_bytes(VALUE)
    sid = cli("secret", "create", "--label", "a=b", "clipw", str(src), node=n["a"]).stdout.strip()
    cid = cli("config", "create", "clicfg", "-", node=n["a"], input="hello\n").stdout.strip()
    try:
        out = cli("secret", "ls", node=n["a"]).stdout.splitlines()
        assert out[0].split() == ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"]
        assert out[1].split()[:2] == [sid, "clipw"] and "ago" in out[1]
        assert cli("secret", "ls", "-q", node=n["a"]).stdout == sid + "\n"
        assert cli("config", "ls", "--format", "{{.Name}}", node=n["a"]).stdout == "clicfg\n"
        assert cli("config", "ls", node=n["a"]).stdout.splitlines()[0].split() == \
            ["ID", "NAME", "CREATED", "UPDATED"]
        shown = json.loads(cli("secret", "inspect", "clipw", node=n["a"]).stdout)
        assert shown[0]["ID"] == sid and set(shown[0]) == \
            {"ID", "Version", "CreatedAt", "UpdatedAt", "Spec"}
        assert shown[0]["Spec"] == {"Name": "clipw", "Labels": {"a": "b"}}
        assert "hunter2" not in cli("secret", "inspect", "--pretty", "clipw", node=n["a"]).stdout
        conf = json.loads(cli("config", "inspect", cid, node=n["a"]).stdout)[0]
        assert conf["Spec"]["Data"] == "aGVsbG8K"
        assert "hello" in cli("config", "inspect", "--pretty", "clicfg", node=n["a"]).stdout
        bad = cli("secret", "create", "clipw", str(src), node=n["a"], check=False)
        assert (bad.returncode, bad.stderr) == (1, "Error: secret clipw already exists\n")
        bad = cli("secret", "ls", node=n["b"], check=False)
        assert (bad.returncode, bad.stderr) == (1, f"Error: {WORKER_VIEW}\n")
        bad = cli("secret", "inspect", "nope", node=n["a"], check=False)
        assert bad.returncode == 1 and bad.stderr == "Error: secret nope not found\n"
    finally:
        assert cli("secret", "rm", "clipw", node=n["a"]).stdout == "clipw\n"
        assert cli("config", "rm", cid, node=n["a"]).stdout == cid + "\n"
    bad = cli("config", "rm", "clicfg", node=n["a"], check=False)
    assert (bad.returncode, bad.stderr) == (1, "Error: config clicfg not found\n")


def _sh(engine, ctr: str, script: str) -> tuple[int, str]:
    return engine.exec_output(ctr, ["sh", "-c", script], stderr=True)


def test_task_sees_its_secret_and_config_only(sw):
    m, w = sw["a"], sw["b"]
    m.secret_create("tpw", VALUE)
    m.config_create("tcfg", CONF)
    spec = ServiceSpec("svc", ("sleep", "600"),
                       secrets=(FileRef("tpw", "tpw"), FileRef("tpw", "other", mode=0o400)),
                       configs=(FileRef("tcfg", "/tcfg"), FileRef("tcfg", "/etc/app/t.conf",
                                                                    mode=0o440)))
    task_dir = os.path.join(w.paths.run, "tasks", "t1")
    try:
        with w.cluster.store().transaction() as c:
            granted = sealing.task_files(w, c, spec, task_dir)
        secrets_, configs = granted
        assert [t for _, t, _ in secrets_] == ["tpw", "other"]
        assert [(t, mode) for _, t, mode in configs] == [("/tcfg", 0o444), ("/etc/app/t.conf", 0o440)]
        assert os.stat(os.path.join(task_dir, "granted")).st_mode & 0o777 == 0o700
        with pytest.raises(NotFound, match="^secret not found: gone$"):
            with w.cluster.store().transaction() as c:
                sealing.task_files(w, c, ServiceSpec("s", ("x",), secrets=(FileRef("gone", "g"),)),
                                   task_dir)
        w.run(ContainerSpec(name="task1", command=("sleep", "600"), network="none", detach=True,
                            secrets=secrets_, configs=configs))
        w.run(ContainerSpec(name="other1", command=("sleep", "600"), network="none", detach=True))
        assert _sh(w, "task1", "cat /run/secrets/tpw") == (0, VALUE.decode())
        assert _sh(w, "task1", "cat /tcfg /etc/app/t.conf") == (0, CONF.decode() * 2)
        code, out = _sh(w, "task1", "stat -c '%a %n' /run/secrets/tpw /run/secrets/other /tcfg "
                                    "/etc/app/t.conf")
        assert (code, out.split("\n")[:4]) == (0, ["444 /run/secrets/tpw", "400 /run/secrets/other",
                                                   "444 /tcfg", "440 /etc/app/t.conf"])
        for path in ("/run/secrets/tpw", "/tcfg", "/etc/app/t.conf"):
            code, out = _sh(w, "task1", f"echo x > {path}")
            assert code != 0 and "Read-only file system" in out, (path, out)
        # the rest of the task's filesystem as before: its files, /proc, scratch; a restart
        assert _sh(w, "task1", "cat /etc/hostname && ls /proc/self/fd >/dev/null && "
                               "echo ok > /tmp/x && cat /tmp/x")[1].endswith("ok\n")
        w.restart("task1", timeout=1)
        assert _sh(w, "task1", "cat /tcfg /run/secrets/tpw") == (0, (CONF + VALUE).decode())
        # the other container: no /run/secrets, no /tcfg, no netkit roots, no host copy
        assert _sh(w, "other1", "ls /run/secrets /tcfg")[0] != 0
        ctr_dir = w.container_dir("task1")
        for path in (os.path.join(task_dir, "granted", "secret-0"),
                     os.path.join(ctr_dir, "secrets", "tpw"), os.path.join(ctr_dir, "configs")):
            assert os.path.exists(path)               # on the host, as root...
            code, out = _sh(w, "other1", f"cat {path}")
            assert code != 0 and "hunter2" not in out, out   # ...hidden from containers
        assert _sh(w, "task1", f"cat {os.path.join(task_dir, 'granted', 'secret-0')}")[0] != 0
        # the host's root was not written: the default target /NAME lives in the task only
        assert not os.path.exists("/tcfg")
        assert VALUE.strip() not in _cluster_file(sw)
    finally:
        for name in ("task1", "other1"):
            try:
                w.remove_container(name, force=True)
            except NotFound:
                pass
        m.secret_remove("tpw")
        m.config_remove("tcfg")


def test_node_joining_later_can_unseal(sw, host, cli):
    from netkit.engine import Engine
    from tests.conftest import unique
    m = sw["a"]
    s = m.secret_create("early", VALUE)
    name = unique("x")
    host.create_node(name, lan=sw["lan"], ip="192.168.77.33/24")
    try:
        token = m.swarm_join_token("worker")
        with Engine(name, root=sw["dirs"][0], run=sw["dirs"][1]) as x:
            x.swarm_join(token=token, remote=f"{IPS['a']}:2377")
            assert sealing.read_key(x.paths.root) == sealing.read_key(m.paths.root)
            with x.cluster.store().transaction() as c:
                obj = sealing.find(c, "secret", "early")
            assert sealing.unseal(sealing.read_key(x.paths.root), sw["cid"], s.id, obj.data) == VALUE
            x.swarm_leave()
            assert sealing.read_key(x.paths.root) is None
    finally:
        host.remove_node(name, force=True)
        m.secret_remove("early")
