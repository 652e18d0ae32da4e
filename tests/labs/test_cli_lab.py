"""`netkit lab config` and errors through click (no root: config needs no engine)."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from netkit.cli.main import cli


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env, prog_name="netkit")


def test_config_prints_the_normalized_file(write):
    path = write("lab.yml", """
        services:
          web: {command: "serve 80", image: nginx, scale: "${N:-2}"}
        """)
    r = run("lab", "-f", path, "config")
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(r.stdout)
    assert data == {"name": "proj", "services": {"web": {"command": ["serve", "80"],
                                                          "networks": {"default": None}, "scale": 2}},
                    "networks": {"default": {"name": "proj_default", "driver": "bridge"}}}
    assert "WARN services.web.image: ignored" in r.stderr
    # options after the subcommand, -p, json, services, networks
    r = run("lab", "config", "-f", path, "-p", "other", "--format", "json")
    assert json.loads(r.stdout)["networks"]["default"]["name"] == "other_default"
    assert run("lab", "config", "-f", path, "--services").stdout == "web\n"
    assert run("lab", "config", "-f", path, "--networks").stdout == "proj_default\n"
    assert run("lab", "config", "-f", path, "-q").stdout == ""


def test_config_shows_restart_stop_signal_and_grace_period(write):
    path = write("lab.yml", """
        services:
          web: {command: "serve 80", restart: "on-failure:3", stop_signal: SIGINT, stop_grace_period: 90s}
          db: {command: "serve 81", restart: "no"}
        """)
    r = run("lab", "-f", path, "config")
    assert r.exit_code == 0, r.output
    services = yaml.safe_load(r.stdout)["services"]
    web = services["web"]
    assert (web["restart"], web["stop_signal"], web["stop_grace_period"]) == ("on-failure:3", "SIGINT", "1m30s")
    assert not {"restart", "stop_signal", "stop_grace_period"} & set(services["db"])


def test_invalid_file_is_one_error_line(write):
    path = write("lab.yml", "services:\n  web:\n    networks: {front: {ipv4_adress: 10.0.0.2}}\n")
    r = run("lab", "-f", path, "config")
    assert r.exit_code == 1
    assert r.stderr == (f"Error: {path}:3: services.web.networks.front.ipv4_adress: unknown key "
                        '(did you mean "ipv4_address"?)\n')


def test_missing_file_and_bad_scale(write, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("lab", "config")
    assert r.exit_code == 1 and r.stderr.startswith("Error: no lab file found in ")
    r = run("lab", "-f", "nope.yml", "config")
    assert r.stderr == "Error: lab file nope.yml not found\n"


def test_help_lists_the_commands():
    r = run("lab", "--help")
    for name in ("up", "down", "stop", "start", "restart", "ps", "config", "scale", "exec", "logs",
                 "graph", "test"):
        assert f"  {name} " in r.stdout
