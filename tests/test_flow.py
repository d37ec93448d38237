"""The helpers called inside flows: script mode end to end, and the pure parts.

Script-mode tests run the fixture flows in ``tests/data/flow_*.py`` as subprocesses
on ``tmp_path`` (no kernel), the way a user runs ``python flows/x.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from ductaflow import environment, flow

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != environment.CAPTURED_BY_PARENT}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONIOENCODING"] = "utf-8"
    return {**env, **extra}


def _run(tmp_path: Path, name: str, *args: str, config: dict | None = None, **env: str):
    """Run ``tests/data/<name>.py`` from ``tmp_path`` (the project root)."""
    if config is not None:
        (tmp_path / "c.json").write_text(json.dumps(config), encoding="utf-8")
        args = ("--config", "c.json", *args)
    return subprocess.run(
        [sys.executable, str(DATA / f"{name}.py"), *args],
        cwd=tmp_path, env=_env(**env), capture_output=True, text=True,
        encoding="utf-8", timeout=30,
    )


def _output(folder: Path, name: str) -> list[str]:
    return (folder / f"{name}_execution_output.txt").read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------- script mode


def test_working_flow_runs_in_output_dir_and_ends_completed(tmp_path: Path) -> None:
    config = {"scenario": "north", "model": {"growth": 0.02}, "data_file": "data/z.csv"}
    done = _run(tmp_path, "flow_ok", "--output-dir", "runs/ok/north", config=config)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "runs" / "ok" / "north"
    assert (run_dir / "result.txt").is_file()
    saved = json.loads((run_dir / "flow_ok_config.json").read_text(encoding="utf-8"))
    assert saved["_project_root"] == str(tmp_path)
    assert saved["model"] == {"growth": 0.02}
    lines = _output(run_dir, "flow_ok")
    assert "growth for north: 0.02" in lines
    assert "data_file is a Path: True" in lines
    assert "notebook: False" in lines
    assert "to stderr" in lines
    assert "unicode: café ✅ 東京" in lines
    assert lines[-1].startswith("✅ Completed flow_ok | Time: ")
    assert lines[-1].endswith("s") and sum("Completed" in line for line in lines) == 1
    assert "growth for north: 0.02" in done.stdout and "to stderr" in done.stderr
    assert "Completed" not in done.stdout  # the footer goes to the file only


def test_tee_delegates_stream_attributes(tmp_path: Path) -> None:
    done = _run(tmp_path, "flow_ok", config={"scenario": "s", "growth": 1, "data_file": "x"})
    line = next(x for x in _output(tmp_path, "flow_ok") if x.startswith("isatty="))
    assert line == "isatty=False encoding=utf-8 fileno=1"
    assert done.returncode == 0


def test_terminal_that_cannot_encode_gets_replacements(tmp_path: Path) -> None:
    config = {"scenario": "s", "growth": 1, "data_file": "x"}
    done = _run(tmp_path, "flow_ok", config=config, PYTHONIOENCODING="ascii")
    assert done.returncode == 0, done.stderr
    assert "unicode: caf? ? ??" in done.stdout
    assert "unicode: café ✅ 東京" in _output(tmp_path, "flow_ok")


def test_failing_flow_keeps_every_line_traceback_and_footer(tmp_path: Path) -> None:
    done = _run(tmp_path, "flow_fail", "--output-dir", "out")
    assert done.returncode == 1
    lines = _output(tmp_path / "out", "flow_fail")
    assert lines[0] == "before the failure" and "a stderr line" in lines
    assert "Traceback (most recent call last):" in lines
    assert "ValueError: growth must be positive" in lines
    assert lines[-1].startswith("❌ Failed flow_fail | Time: ")
    assert lines[-1].endswith("s | ValueError: growth must be positive")
    assert "ValueError: growth must be positive" in done.stderr  # terminal too


@pytest.mark.parametrize(
    ("config", "status", "footer"),
    [
        ({"code": 0}, 0, "✅ Completed flow_exit"),
        ({}, 0, "✅ Completed flow_exit"),
        ({"how": "raise"}, 0, "✅ Completed flow_exit"),
        ({"code": 3}, 3, "❌ Failed flow_exit"),
        ({"code": "stopped early"}, 1, "❌ Failed flow_exit"),
    ],
)
def test_sys_exit_zero_completes_and_nonzero_fails(
    tmp_path: Path, config: dict, status: int, footer: str
) -> None:
    done = _run(tmp_path, "flow_exit", config=config)
    assert done.returncode == status
    lines = _output(tmp_path, "flow_exit")
    assert lines[0] == "before the exit" and "after the exit" not in lines
    assert lines[-1].startswith(footer)
    if status:
        assert lines[-1].endswith(f"| SystemExit: {config['code']}")


def test_no_execute_prepares_the_folder_only(tmp_path: Path) -> None:
    done = _run(tmp_path, "flow_fail", "--output-dir", "prep", "--no-execute", config={"a": 1})
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "prep" / "flow_fail_config.json").read_text("utf-8"))
    assert saved == {"a": 1, "_project_root": str(tmp_path)}
    assert "before the failure" not in done.stdout
    assert "--no-execute" in done.stdout


def test_parent_capture_means_no_tee_and_no_footer(tmp_path: Path) -> None:
    done = _run(tmp_path, "flow_fail", "--output-dir", "o", DUCTAFLOW_CAPTURED_BY_PARENT="1")
    assert done.returncode == 1
    assert "before the failure" in done.stdout
    assert (tmp_path / "o" / "flow_fail_config.json").is_file()
    assert not (tmp_path / "o" / "flow_fail_execution_output.txt").exists()


def test_missing_config_file_is_one_line_and_status_2(tmp_path: Path) -> None:
    done = _run(tmp_path, "flow_fail", "--config", "nope.json")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "nope.json" in done.stderr
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    bad = _run(tmp_path, "flow_fail", "--config", "bad.json")
    assert bad.returncode == 2 and "bad.json" in bad.stderr and "Traceback" not in bad.stderr


def test_missing_default_config_means_empty_config(tmp_path: Path) -> None:
    done = _run(tmp_path, "flow_ok")  # config/flows/flow_ok.json does not exist
    assert done.returncode == 1  # the flow itself then misses its names
    assert _output(tmp_path, "flow_ok")[-1].endswith("NameError: name 'scenario' is not defined")
    saved = json.loads((tmp_path / "flow_ok_config.json").read_text("utf-8"))
    assert saved == {"_project_root": str(tmp_path)}


def test_output_is_written_live(tmp_path: Path) -> None:
    release = tmp_path / "release"
    (tmp_path / "c.json").write_text(json.dumps({"release": str(release)}), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(DATA / "flow_live.py"), "--config", "c.json"],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        output = tmp_path / "flow_live_execution_output.txt"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if output.exists() and "first line" in output.read_text(encoding="utf-8"):
                break
            time.sleep(0.02)
        assert process.poll() is None, "the flow ended before its output was seen"
        assert output.read_text(encoding="utf-8") == "first line\n"
    finally:
        release.touch()
        process.wait(timeout=10)
    assert _output(tmp_path, "flow_live")[-1].startswith("✅ Completed flow_live")


def test_importing_ductaflow_is_cheap() -> None:
    code = (
        "import sys, ductaflow, ductaflow.flow\n"
        "from ductaflow import load_cli_config, unpack_config\n"
        "heavy = ['pandas', 'papermill', 'rich', 'nbconvert', 'IPython', 'jinja2']\n"
        "print([m for m in heavy if m in sys.modules], sys.stdout is sys.__stdout__,"
        " sys.excepthook is sys.__excepthook__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.strip() == "[] True True", done.stderr


# ------------------------------------------------------------- output file cap


def test_a_script_flows_output_is_capped_and_still_ends_with_the_footer(tmp_path: Path) -> None:
    """The capture inside a script flow uses the runners' one capped writer."""
    flow._start_capture(tmp_path / "out.txt", "x")
    sink = flow.current_capture().sink
    sink.cap = 20
    try:
        print("0123456789")
        print("partial", end="")
        print("0123456789")
        print("dropped")
    finally:
        flow._stop_capture(footer=True)
    lines = (tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["0123456789", "partial01", "... output truncated at 20 bytes ..."]
    assert lines[3].startswith("✅ Completed x | Time: ") and len(lines) == 4


def test_cap_is_50_megabytes() -> None:
    from ductaflow.run_folder.files import OUTPUT_CAP_BYTES

    assert OUTPUT_CAP_BYTES == 50 * 1024 * 1024


def test_footer_line_and_exception_text() -> None:
    failed = flow.footer_line("prep", 0.5, "ValueError: x")
    assert failed == "❌ Failed prep | Time: 0.50s | ValueError: x"
    assert flow.describe_exception(ValueError, ValueError("a\nb")) == "ValueError: a"
    assert flow.describe_exception(KeyboardInterrupt, KeyboardInterrupt()) == "KeyboardInterrupt"


# ------------------------------------------------------------------ notebook


def _fake_ipython(monkeypatch: pytest.MonkeyPatch, shell: object | None) -> None:
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", module)


def test_is_notebook_execution_false_without_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert flow.is_notebook_execution() is False
    _fake_ipython(monkeypatch, None)
    assert flow.is_notebook_execution() is False
    terminal = type("TerminalInteractiveShell", (), {})()
    _fake_ipython(monkeypatch, terminal)
    assert flow.is_notebook_execution() is False


def test_is_notebook_execution_true_in_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    zmq = type("ZMQInteractiveShell", (), {})
    _fake_ipython(monkeypatch, type("Shell", (zmq,), {})())
    assert flow.is_notebook_execution() is True
    with_kernel = type("Other", (), {"kernel": object()})()
    _fake_ipython(monkeypatch, with_kernel)
    assert flow.is_notebook_execution() is True


# -------------------------------------------------------------------- unpack


def test_unpack_flattens_one_level_and_top_level_wins() -> None:
    config = {
        "scenario": "north",
        "model": {"growth": 0.02, "scenario": "ignored", "deep": {"x": 1}},
        "other": {"growth": 0.5, "rate": 3},
        "_project_root": "/abs/root",
    }
    names = flow.unpack_config(config, verbose=False)
    assert names == {
        "scenario": "north",
        "model": config["model"],
        "other": config["other"],
        "_project_root": "/abs/root",
        "growth": 0.02,
        "deep": {"x": 1},
        "rate": 3,
    }


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("input_path", "zones.csv", Path("zones.csv")),
        ("out_file", "a.csv", Path("a.csv")),
        ("work_dir", ".", Path(".")),
        ("results_folder", "res", Path("res")),
        ("path", "x", Path("x")),
        ("File", "x", Path("x")),
        ("zones", "../../data/zones.csv", Path("../../data/zones.csv")),
        ("zones", "data\\zones.csv", Path("data\\zones.csv")),
        ("url", "https://example.org/a/b", "https://example.org/a/b"),
        ("source_file", "s3://bucket/key", "s3://bucket/key"),
        ("scenario", "north", "north"),
        ("input_path", "", ""),
        ("note", "line one/\nline two", "line one/\nline two"),
        ("profile", "filename", "filename"),
        ("input_path", 3, 3),
        ("paths", ["a/b"], ["a/b"]),
        ("_project_root", "/abs/root", "/abs/root"),
    ],
)
def test_unpack_path_rule(key: str, value: object, expected: object) -> None:
    result = flow.unpack_config({key: value}, verbose=False)[key]
    assert result == expected and type(result) is type(expected)


def test_unpack_skips_non_names_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    config = {"ok": 1, "not-a-name": 2, "class": 3, "2x": 4, "sub": {"bad key": 5, "fine": 6}}
    names = flow.unpack_config(config, "Prep")
    assert set(names) == {"ok", "sub", "fine"}
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Prep: unpacked 3 values: ok=1, sub={'bad key': 5, 'fine': 6}, fine=6"
    assert out[1] == (
        "Prep: note: left out keys that are not Python names: not-a-name, class, 2x, bad key"
    )


def test_unpack_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = {"scenario": "north", "growth": 0.02, "data_file": "d.csv", "_project_root": "/r",
              "long": "x" * 100}
    local_vars = {"config": config}
    flow.unpack_config(config, "Data prep", local_vars)
    assert local_vars == {"config": config}
    line = capsys.readouterr().out.strip()
    assert line.startswith(
        "Data prep: unpacked 4 values: scenario='north', growth=0.02, data_file=Path('d.csv'), "
        "long='xxx"
    )
    assert line.endswith("xxx...")  # engine keys such as _project_root are not shown
    assert len(line.split("long=")[1]) == 60
    assert flow.unpack_config({}, verbose=True) == {}
    assert capsys.readouterr().out == "unpacked 0 values\n"


def test_unpack_idiom_works_at_module_level_of_a_script(tmp_path: Path) -> None:
    script = tmp_path / "idiom.py"
    script.write_text(
        "from ductaflow import unpack_config\n"
        "config = {'scenario': 'east', 'model': {'growth': 0.1}, 'out_dir': 'o'}\n"
        "vars().update(unpack_config(config, 'X', locals()))\n"
        "print(scenario, growth, type(out_dir).__name__.endswith('Path'))\n",  # noqa: F821
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script)], env=_env(), capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.splitlines()[-1] == "east 0.1 True", done.stderr


# ------------------------------------------------------------------- summary


def test_display_config_summary(capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "_project_root": "/r",
        "scenario": "north",
        "year": 2030,
        "code": "007",
        "model": {"growth": 0.02, "on": True, "k": None},
        "zones": ["a", "b"],
    }
    flow.display_config_summary(config, "Data prep")
    assert capsys.readouterr().out.splitlines() == [
        "Data prep config:",
        '  scenario = "north"',
        "  year     = 2030",
        '  code     = "007"',
        "  model:",
        "    growth = 0.02",
        "    on     = true",
        "    k      = null",
        '  zones    = ["a", "b"]',
        "  engine:",
        '    _project_root = "/r"',
    ]
    flow.display_config_summary({})
    assert capsys.readouterr().out.splitlines() == ["config:", "  (empty)"]
