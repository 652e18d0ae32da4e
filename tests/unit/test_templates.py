"""netkit.cli.template: Go's text/template as Docker's `--format` runs it (pure)."""

from __future__ import annotations

import pytest

from netkit.cli.template import Template, TemplateError

DATA = {
    "Id": "f" * 64, "Name": "/web", "RestartCount": 2, "Empty": "", "Zero": 0, "Nil": None,
    "State": {"Status": "running", "ExitCode": 0, "Running": True},
    "Config": {"Cmd": ["sleep", "60"], "Labels": {"a": "1"}, "Hostname": "web"},
    "NetworkSettings": {"IPAddress": "172.17.0.2", "Ports": {"80/tcp": None},
                        "Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
}


def render(text: str, data: object = DATA) -> str:
    return Template(text).render(data)


@pytest.mark.parametrize("text, out", [
    # Go's builtins
    ('{{printf "%s:%d" .Name .RestartCount}}', "/web:2"),
    ('{{printf "%-6s|%5d|%05d" "ab" 42 7}}', "ab    |   42|00007"),
    ('{{printf "%v %q %t %x" .Config.Cmd "a b" true 255}}', '[sleep 60] "a b" true ff'),
    ('{{printf "%.2f%%" 3}}', "%!f(int=3)%"),
    ('{{printf "%d"}}', "%!d(MISSING)"),
    ('{{printf "x" 1}}', "x%!(EXTRA int=1)"),
    ("{{.Name | printf \"<%s>\"}}", "</web>"),
    ('{{eq .State.Status "running"}}', "true"),
    ('{{eq .State.Status "exited" "running"}}', "true"),
    ('{{ne .State.ExitCode 0}}', "false"),
    ("{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 3 2}}", "true true false true"),
    ('{{lt "a" "b"}}', "true"),
    ("{{not .State.Running}} {{not .Empty}}", "false true"),
    ("{{and .State.Running .Name}}", "/web"),
    ("{{and .Empty .Nope}}", ""),                                   # lazy: .Nope not evaluated
    ("{{or .Empty .Zero .Name}}", "/web"),
    ("{{or .Name .Nope}}", "/web"),
    ('{{if and .State.Running (eq .RestartCount 2)}}yes{{end}}', "yes"),
    ("{{len .Config.Cmd}} {{len .Name}} {{len .Config.Labels}}", "2 4 1"),
    ('{{index .Config.Labels "a"}} {{index .Config.Cmd 1}}', "1 60"),
    ('{{index .Config.Labels "b"}}', "<no value>"),
    ("{{print 1 2 \"x\" 3}}", "1 2x3"),
    ("{{println .Name 1}}", "/web 1\n"),
    ('{{if eq .State.Status "exited"}}x{{else if .State.Running}}up{{else}}?{{end}}', "up"),
    ('{{if .Empty}}a{{else if .Zero}}b{{else with .Name}}{{.}}{{end}}', "/web"),
    ('{{if .Empty}}a{{else if .Zero}}b{{end}}', ""),
    # Docker's functions
    ('{{join .Config.Cmd " "}}', "sleep 60"),
    ('{{split "a,b,c" ","}}', "[a b c]"),
    ('{{join (split "a,b" ",") "+"}}', "a+b"),
    ('{{title "hello wORLD-x"}}', "Hello WORLD-X"),
    ('{{lower "ABC"}} {{upper "abc"}}', "abc ABC"),
    ('[{{pad .State.Status 2 1}}]', "[  running ]"),
    ('[{{pad .Empty 2 1}}]', "[]"),
    ('{{truncate .Id 12}} {{truncate "ab" 5}}', "ffffffffffff ab"),
    ("{{json .Config.Cmd}} {{json .Nil}}", '["sleep","60"] null'),
    # Go field names of Docker's structs beside the JSON ones
    ("{{.ID}}", "f" * 64),
    ("{{.NetworkSettings.IPAddress}}", "172.17.0.2"),
    ("{{range $p, $b := .NetworkSettings.Ports}}{{$p}}={{$b}}{{end}}", "80/tcp=<nil>"),
])
def test_functions(text, out):
    assert render(text) == out


@pytest.mark.parametrize("text, message", [
    ("{{.Nope}}", 'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("x {{.State.Nope}}", 'template: :1:4: executing "" at <.State.Nope>: map has no entry for key "Nope"'),
    ("a\nbc{{ .Nil.X}}", 'template: :2:5: executing "" at <.Nil.X>: nil pointer evaluating interface {}.X'),
    ('{{join .Name ","}}', 'template: :1:7: executing "" at <.Name>: wrong type for value; '
                           'expected []string; got string'),
    ("{{index .Config.Cmd 5}}", 'template: :1:2: executing "" at <index .Config.Cmd 5>: '
                                "error calling index: index out of range: 5"),
    ('{{eq .RestartCount "2"}}', 'template: :1:2: executing "" at <eq .RestartCount "2">: '
                                 "error calling eq: incompatible types for comparison"),
    ("{{lt .Config .Name}}", 'template: :1:2: executing "" at <lt .Config .Name>: '
                             "error calling lt: invalid type for comparison"),
    ("{{len .RestartCount}}", 'template: :1:2: executing "" at <len .RestartCount>: '
                              "error calling len: len of type int"),
    ("{{.Name.X}}", 'template: :1:2: executing "" at <.Name.X>: can\'t evaluate field X in type string'),
])
def test_execution_errors_are_gos(text, message):
    with pytest.raises(TemplateError) as info:
        render(text)
    assert str(info.value) == "template parsing error: " + message


def test_undefined_function_is_a_parse_error():
    with pytest.raises(TemplateError) as info:
        Template("{{nosuch .Name}}")
    assert str(info.value) == 'template parsing error: template: :1: function "nosuch" not defined'


@pytest.mark.parametrize("text", ["{{not}}", "{{ne 1}}", "{{and}}", "{{pad .Name 1}}"])
def test_wrong_number_of_arguments(text):
    with pytest.raises(TemplateError, match="wrong number of args"):
        render(text)
