"""Bookkeeping on disk: records, started markers, canonical configs, atomic writes."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from ductaflow.run_folder import fingerprints, records
from ductaflow.run_folder.files import FLOWS_MANIFEST, RECORD, STATE_DIR


def _record(**changes) -> dict:
    record = records.new_record(
        stage="prep", instance="north", flow="flows/prep.py",
        config={"growth": 0.02, "_project_root": "/somewhere", "year": 2030.0},
        code={"flows/prep.py": "ab" * 32},
        inputs={"data/zones.csv": {"size": 3, "mtime_ns": 1, "sha256": "cd" * 32}},
        upstream={}, status="success", started_at=records.utc_now(),
        ended_at=records.utc_now(), duration_s=1.5,
    )
    record.update(changes)
    return record


def test_canonical_drops_private_keys_sorts_and_folds_floats() -> None:
    config = {"b": {"_x": 1, "y": 2030.0, "z": [1.0, 2.5]}, "a": True, "_project_root": "/p"}
    assert records.canonical(config) == {"a": True, "b": {"y": 2030, "z": [1, 2.5]}}
    assert list(records.canonical(config)) == ["a", "b"]
    assert isinstance(records.canonical(2030.0), int)


def test_canonical_configs_ignore_key_order_private_keys_and_float_form() -> None:
    from ductaflow.planning.reasons import same

    one = {"year": 2030, "nested": {"a": 1, "b": "x"}, "_project_root": "/here"}
    two = {"nested": {"b": "x", "a": 1.0}, "year": 2030.0, "_project_root": "/there"}
    assert same(records.canonical(one), records.canonical(two))
    assert not same(records.canonical({"a": True}), records.canonical({"a": 1}))
    assert not same(records.canonical({"a": 2030.5}), records.canonical({"a": 2030}))


def test_record_round_trip_and_started_marker(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "prep" / "north"
    assert records.read_record(run_dir) is None
    assert not records.is_started(run_dir)
    records.write_started(run_dir, {"flow": "flows/prep.py"})
    assert records.is_started(run_dir)
    record = _record()
    records.write_record(run_dir, record)
    assert not records.is_started(run_dir)
    assert records.read_record(run_dir) == json.loads(json.dumps(record))
    assert records.read_record(run_dir)["config"] == {"growth": 0.02, "year": 2030}
    assert not list((run_dir / STATE_DIR).glob("*.tmp"))


def test_write_started_removes_the_previous_record_and_manifest(tmp_path: Path) -> None:
    records.write_record(tmp_path, _record())
    records.append_flows_manifest(tmp_path, {"flow": "flows/a.py", "execution_dir": "a"})
    records.write_started(tmp_path, {})
    assert records.read_record(tmp_path) is None
    assert not records.has_record_file(tmp_path)
    assert records.read_flows_manifest(tmp_path) == []
    assert records.is_started(tmp_path)


def test_the_folder_is_synced_after_every_change_that_must_survive_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of write_started and write_record ends with one fsync of the bookkeeping
    folder, after all its renames and removals: two fsyncs each, not more."""
    events: list[str] = []
    folder = tmp_path / STATE_DIR

    def fsync_dir(path: Path) -> None:
        names = sorted(p.name for p in Path(path).iterdir() if not p.name.endswith(".tmp"))
        events.append("sync " + ",".join(names))

    monkeypatch.setattr(records, "_fsync_dir", fsync_dir)
    real_fsync = os.fsync
    monkeypatch.setattr(records.os, "fsync", lambda fd: (events.append("file"), real_fsync(fd)))
    records.write_record(tmp_path, _record())
    assert events == ["file", "sync record.json"]
    events.clear()
    records.write_started(tmp_path, {})
    assert events == ["file", "sync started.json"]
    events.clear()
    records.write_record(tmp_path, _record())
    assert events == ["file", "sync record.json"]
    assert sorted(p.name for p in folder.iterdir()) == ["record.json"]


def test_write_record_refuses_what_read_record_would_not_accept(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="status"):
        records.write_record(tmp_path, _record(status="green"))
    with pytest.raises(ValueError, match="run_id"):
        records.write_record(tmp_path, {k: v for k, v in _record().items() if k != "run_id"})
    assert not records.has_record_file(tmp_path)


@pytest.mark.parametrize("text", [
    "", "null", "[]", '"x"', "{", "{}", "\xff\xfe", "[" * 100000,
    json.dumps({**_record(), "version": 2}),
    json.dumps({**_record(), "version": True}),
    json.dumps({**_record(), "config": []}),
])
def test_read_record_returns_none_for_garbage(tmp_path: Path, text: str) -> None:
    (tmp_path / STATE_DIR).mkdir()
    (tmp_path / RECORD).write_bytes(text.encode("utf-8", "surrogateescape"))
    assert records.read_record(tmp_path) is None


def test_read_record_truncated_or_garbled_is_none_or_whole(tmp_path: Path) -> None:
    records.write_record(tmp_path, _record(extra={"ü": "€" * 3}))
    path = tmp_path / RECORD
    data = path.read_bytes()
    whole = records.read_record(tmp_path)
    rng = random.Random(7)
    for cut in range(len(data) + 1):
        for tail in (b"", bytes(rng.randrange(256) for _ in range(5))):
            assert records.parse_record(data[:cut] + tail) in (None, whole), (cut, tail)
    for cut in (0, 1, len(data) // 2, len(data) - 2):
        path.write_bytes(data[:cut])
        assert records.read_record(tmp_path) is None
    path.write_bytes(data[:-1])  # only the final newline lost
    assert records.read_record(tmp_path) == whole


def test_atomic_write_text_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "conductor_results.csv"
    records.atomic_write_text(target, "old\n")

    with pytest.raises(TypeError):
        records.atomic_write_text(target, object())  # type: ignore[arg-type]
    assert target.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["conductor_results.csv"]
    records.atomic_write_text(target, "new ✅\n")
    assert target.read_text(encoding="utf-8") == "new ✅\n"


def test_fingerprints(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "z.csv").write_bytes(b"abc")
    found = fingerprints.input_fingerprints(tmp_path, ["data/z.csv", "data/missing.csv"])
    assert list(found) == ["data/z.csv"]
    assert found["data/z.csv"]["size"] == 3
    assert found["data/z.csv"]["sha256"] == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    code = fingerprints.code_fingerprint(tmp_path, ["data/z.csv", "flows/none.py"])
    assert code == {"data/z.csv": found["data/z.csv"]["sha256"], "flows/none.py": ""}


def test_flows_manifest_skips_bad_lines(tmp_path: Path) -> None:
    assert records.read_flows_manifest(tmp_path) == []
    records.append_flows_manifest(tmp_path, {"flow": "flows/a.py", "execution_dir": "runs/a",
                                           "status": "success", "output_file": "x"})
    with open(tmp_path / FLOWS_MANIFEST, "ab") as handle:
        handle.write(b'{"flow": "flows/b.py"\n[1]\n\xff\n{"no": "flow"}\n')
    records.append_flows_manifest(tmp_path, {"flow": "flows/c.py", "execution_dir": "c"})
    assert [e["flow"] for e in records.read_flows_manifest(tmp_path)] == ["flows/a.py",
                                                                       "flows/c.py"]


def test_upstream_run_ids(tmp_path: Path) -> None:
    record = _record()
    records.write_record(tmp_path / "prep" / "north", record)
    found = records.upstream_run_ids(tmp_path, ["prep/north", "prep/south"])
    assert found == {"prep/north": record["run_id"]}
