"""The run record: written and read back unchanged; old files read, newer or broken ones do not."""

from __future__ import annotations

import json

import pytest

from selfcross.training.record import (
    RESULT_FILE,
    SCHEMA_VERSION,
    RunRecord,
    read_record,
    write_record,
)
from tests.helpers.recordkit import make_record


def test_round_trip_through_the_file(tmp_path):
    record = make_record("cross", "TVA", 2, 7, 0.41, 0.52)
    path = write_record(tmp_path, record)
    assert path == tmp_path / RESULT_FILE
    on_disk = json.loads(path.read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert on_disk["data"]["fingerprint"] == record.data.fingerprint
    assert read_record(path) == record
    assert list(on_disk) == list(record.to_dict())  # keys in the dataclass's order


def test_a_version_1_file_without_schema_version_reads(tmp_path):
    raw = make_record("self", "TV", 1, 1, 0.3, 0.4).to_dict()
    del raw["schema_version"]
    (tmp_path / RESULT_FILE).write_text(json.dumps(raw))
    record = read_record(tmp_path / RESULT_FILE)
    assert record is not None and record.schema_version == 1
    assert (record.model, record.modality, record.test_uwa) == ("self", "TV", 0.4)


def test_a_version_1_file_without_a_feature_set_reads_as_the_papers(tmp_path):
    """data.feature_set was added with a default (no schema bump, record.py's rule): a file
    without it reads as the paper's features; one with it reads it back."""
    from selfcross.manifest import feature_set_label

    raw = make_record("self", "TV", 1, 1, 0.3, 0.4).to_dict()
    del raw["schema_version"], raw["data"]["feature_set"]
    (tmp_path / RESULT_FILE).write_text(json.dumps(raw))
    record = read_record(tmp_path / RESULT_FILE)
    assert record.data.feature_set == {} and feature_set_label(record.data.feature_set) == "paper"
    wavlm = {"A": {"encoder": "wavlm", "weights": "ab" * 8, "layer": 3, "width": 768, "rate": 50}}
    again = make_record("self", "TV", 1, 1, 0.3, 0.4, data={"feature_set": wavlm})
    assert read_record(write_record(tmp_path / "v2", again)).data.feature_set == wavlm


def test_a_version_1_file_reads_without_weighted_f1(tmp_path):
    """Version 1 had no weighted F1: both read as None (absent), not as a missing key."""
    raw = make_record("self", "TV", 1, 1, 0.3, 0.4).to_dict()
    for key in ("schema_version", "test_wf1", "val_wf1"):
        del raw[key]
    (tmp_path / RESULT_FILE).write_text(json.dumps(raw))
    record = read_record(tmp_path / RESULT_FILE)
    assert record is not None and record.schema_version == 1
    assert (record.test_wf1, record.val_wf1) == (None, None)
    assert record.confusion is not None  # what the tables derive the test value from


@pytest.mark.parametrize("key", ["test_wf1", "val_wf1"])
def test_a_version_2_file_without_weighted_f1_is_refused(key):
    raw = make_record("self", "TV", 1, 1, 0.3, 0.4).to_dict()
    assert raw["schema_version"] == SCHEMA_VERSION == 2
    del raw[key]
    with pytest.raises(ValueError, match=f"missing key {key} \\(schema_version 2\\)"):
        RunRecord.from_dict(raw)


def test_a_newer_version_is_refused(tmp_path):
    raw = {**make_record("self", "TV", 1, 1, 0.3, 0.4).to_dict(), "schema_version": 99}
    with pytest.raises(ValueError, match="schema_version 99 is newer"):
        RunRecord.from_dict(raw)
    (tmp_path / RESULT_FILE).write_text(json.dumps(raw))
    assert read_record(tmp_path / RESULT_FILE) is None


@pytest.mark.parametrize("key", ["test_uwa", "config_hash", "data.fingerprint"])
def test_a_missing_key_is_refused(tmp_path, key):
    raw = make_record("self", "TV", 1, 1, 0.3, 0.4).to_dict()
    if key.startswith("data."):
        del raw["data"][key.split(".", 1)[1]]
    else:
        del raw[key]
    with pytest.raises(ValueError, match=f"missing key {key}"):
        RunRecord.from_dict(raw)
    (tmp_path / RESULT_FILE).write_text(json.dumps(raw))
    assert read_record(tmp_path / RESULT_FILE) is None


def test_unreadable_and_half_written_files_read_as_none(tmp_path):
    assert read_record(tmp_path / RESULT_FILE) is None  # absent
    whole = json.dumps(make_record("self", "TV", 1, 1, 0.3, 0.4).to_dict())
    (tmp_path / RESULT_FILE).write_text(whole[: len(whole) // 2])
    assert read_record(tmp_path / RESULT_FILE) is None
    (tmp_path / RESULT_FILE).write_text("[1, 2]")
    assert read_record(tmp_path / RESULT_FILE) is None


def test_a_group_members_record_names_its_group_and_a_version_1_record_names_none(tmp_path):
    member = make_record("self", "TV", 1, 2, 0.3, 0.4, seed_group=[1, 2, 3])
    write_record(tmp_path, member)
    assert read_record(tmp_path / RESULT_FILE).seed_group == [1, 2, 3]
    old = make_record("self", "TV", 1, 2, 0.3, 0.4).to_dict()
    del old["seed_group"]
    for raw in (
        {**old, "schema_version": 1},
        {k: v for k, v in old.items() if k != "schema_version"},
    ):
        record = RunRecord.from_dict(raw)
        assert record.seed_group is None and record.schema_version == 1
    assert SCHEMA_VERSION == 2


def test_a_version_1_reader_is_told_that_a_group_record_is_newer(tmp_path, monkeypatch):
    """An older selfcross (version 1) refuses the new key by the version, not as a broken file."""
    from selfcross.training import record as record_module

    raw = make_record("self", "TV", 1, 2, 0.3, 0.4, seed_group=[1, 2]).to_dict()
    monkeypatch.setattr(record_module, "SCHEMA_VERSION", 1)
    with pytest.raises(ValueError, match="schema_version 2 is newer"):
        RunRecord.from_dict(raw)
