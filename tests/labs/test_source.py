"""YAML with positions, YAML 1.2 scalars, interpolation and .env (pure)."""

from __future__ import annotations

import pytest

from netkit.labs.source import (LabFileError, Where, dotted, interpolate, load_env, parse_env_file,
                                parse_yaml)


def test_positions_of_keys_and_items():
    data, where = parse_yaml("services:\n  web:\n    ports:\n      - 80\n      - '81'\n", "f.yml")
    assert data == {"services": {"web": {"ports": [80, "81"]}}}
    assert where.of(("services", "web")) == ("f.yml", 2)
    assert where.of(("services", "web", "ports", 1)) == ("f.yml", 5)
    assert where.of(("services", "web", "ports", 1, "deeper")) == ("f.yml", 5)     # nearest parent


def test_yaml_12_scalars_like_compose():
    text = "a: yes\nb: on\nc: 22:22\nd: true\ne: 0o17\nf: 0x1F\ng: 1.5\nh: ~\ni: '3'\nj: 2001-12-14\nk: 010\n"
    data, _ = parse_yaml(text, "f")
    assert data == {"a": "yes", "b": "on", "c": "22:22", "d": True, "e": 15, "f": 31, "g": 1.5,
                    "h": None, "i": "3", "j": "2001-12-14", "k": 8}   # yaml.v3: 010 is octal (1.1)


def test_anchors_and_merge_keys():
    text = "x-base: &b\n  command: sleep 1\n  scale: 2\nservices:\n  a: *b\n  c:\n    <<: *b\n    scale: 3\n"
    data, _ = parse_yaml(text, "f")
    assert data["services"]["a"] == {"command": "sleep 1", "scale": 2}
    assert data["services"]["c"] == {"command": "sleep 1", "scale": 3}


def test_duplicate_key_is_an_error():
    with pytest.raises(LabFileError) as e:
        parse_yaml("services:\n  web: {}\n  web: {}\n", "lab.yml")
    assert str(e.value) == "lab.yml:3: services.web: duplicate key (first defined at line 2)"


def test_syntax_error_names_file_and_line():
    with pytest.raises(LabFileError, match=r"^lab.yml:2: invalid YAML: "):
        parse_yaml("a: [1, 2\nb: 3\n", "lab.yml")


def test_empty_file():
    assert parse_yaml("", "f")[0] == {}


def test_dotted():
    assert dotted(("services", "web", "ports", 0)) == "services.web.ports[0]"


@pytest.mark.parametrize("text, want", [
    ("${A}", "1"), ("$A", "1"), ("x${A}y", "x1y"), ("${NOPE:-d}", "d"), ("${EMPTY:-d}", "d"),
    ("${EMPTY-d}", ""), ("${NOPE-d}", "d"), ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("$$A", "$A"), ("$${A}", "${A}"), ("${NOPE:-${A}x}", "1x"),
    ("${A:?must}", "1"),
])
def test_interpolation(text, want):
    env = {"A": "1", "EMPTY": ""}
    assert interpolate({"k": text}, env, Where()) == {"k": want}


def test_interpolation_leaves_keys_and_non_strings():
    assert interpolate({"$A": 3, "l": ["$A", True]}, {"A": "x"}, Where()) == {"$A": 3, "l": ["x", True]}


def test_unset_variable_warns_once():
    warnings: list[str] = []
    out = interpolate({"a": "${NOPE}", "b": "$NOPE"}, {}, Where(), warnings)
    assert out == {"a": "", "b": ""}
    assert warnings == ['The "NOPE" variable is not set. Defaulting to a blank string.']


def test_required_variable_and_bad_syntax_name_the_key():
    _, where = parse_yaml("services:\n  web:\n    command: ${CMD:?give a command}\n", "lab.yml")
    with pytest.raises(LabFileError) as e:
        interpolate({"services": {"web": {"command": "${CMD:?give a command}"}}}, {}, where)
    assert str(e.value) == ("lab.yml:3: services.web.command: required variable CMD is missing a value: "
                            "give a command")
    with pytest.raises(LabFileError, match=r'invalid interpolation format in "a \$ b"'):
        interpolate({"k": "a $ b"}, {}, Where())
    with pytest.raises(LabFileError, match=r"\$\{1x\} is not a variable"):
        interpolate({"k": "${1x}"}, {}, Where())


def test_env_file_syntax():
    text = ('# comment\n\nA=1\nexport B = two words  # trailing comment\nC="quoted # not a comment\\n"\n'
            "D='single $A'\nE=${A}-x\nF=\n")
    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": "quoted # not a comment\n",
                                    "D": "single $A", "E": "1-x", "F": ""}
    with pytest.raises(LabFileError, match=r"^.env:1: unexpected character"):
        parse_env_file("1BAD=x\n")


def test_environment_wins_over_env_file(tmp_path):
    (tmp_path / ".env").write_text("A=file\nB=file\n")
    env = load_env(str(tmp_path), environ={"A": "shell"})
    assert env["A"] == "shell" and env["B"] == "file"
    other = tmp_path / "other.env"
    other.write_text("B=other\n")
    assert load_env(str(tmp_path), [str(other)], environ={})["B"] == "other"
    with pytest.raises(Exception, match="env file .*missing.env not found"):
        load_env(str(tmp_path), [str(tmp_path / "missing.env")], environ={})
