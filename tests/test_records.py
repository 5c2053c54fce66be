"""Run records: written atomically, never overwritten; the leaderboard and paper tables
computed from them against values worked out by hand."""
import statistics

import pytest

from fashionbench.errors import InputError
from fashionbench.leaderboard import build_leaderboard, write_leaderboard
from fashionbench.records import REQUIRED_KEYS, config_sha, json_safe, load_records, write_record
from helpers import make_record


def test_records_are_never_overwritten(tmp_path):
    paths = {write_record(make_record(0, 0.5), tmp_path) for _ in range(3)}
    assert len(paths) == 3
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = load_records(tmp_path)
    assert len(loaded) == 3 and all(set(REQUIRED_KEYS) <= set(r) for r in loaded)


def test_nan_becomes_null():
    assert json_safe({"a": float("nan"), "b": [1.0, float("inf")]}) == {"a": None, "b": [1.0, None]}


def test_config_sha_ignores_seed_and_paths_but_not_recipe():
    a = {"seed_everything": 0, "data": {"init_args": {"root": "/a", "batch_size": 8}}}
    b = {"seed_everything": 1, "data": {"init_args": {"root": "/b", "batch_size": 8}}}
    c = {"seed_everything": 0, "data": {"init_args": {"root": "/a", "batch_size": 16}}}
    assert config_sha(a) == config_sha(b) != config_sha(c)


def test_bad_record_names_the_file(tmp_path):
    (tmp_path / "bad.json").write_text('{"paper": "x",\n oops}')
    with pytest.raises(InputError, match=r"bad\.json:2: not a JSON run record"):
        load_records(tmp_path)
    (tmp_path / "bad.json").write_text('{"paper": "x"}')
    with pytest.raises(InputError, match=r"bad\.json: run record lacks table"):
        load_records(tmp_path)


def test_leaderboard_best_and_spread_over_seeds(tmp_path):
    maps = [0.80, 0.90, 0.85]
    for seed, value in enumerate(maps):
        write_record(make_record(seed, value), tmp_path)
    write_record(make_record(0, 0.70, model="CMSG [resnet101]"), tmp_path)
    write_record(make_record(0, 0.99, source="synthetic"), tmp_path)
    table = build_leaderboard(load_records(tmp_path))
    real = table[(table.model == "Baseline [resnet101]") & (table.data_source == "real")].iloc[0]
    assert real["runs"] == 3 and real["seeds"] == "0 1 2"
    assert real["best"] == max(maps) and real["min"] == min(maps)
    assert real["median"] == pytest.approx(statistics.median(maps))
    assert real["CF1"] == pytest.approx(0.90 / 2)  # the best run's other metrics
    assert len(table) == 3  # synthetic runs stay a separate row

    csv_path, md_path = write_leaderboard(tmp_path, tmp_path / "out")
    md = md_path.read_text()
    assert "| Baseline [resnet101] | voc2007 | multilabel | test | real | mAP | 90.0 | 80.0 ← 85.0 → 90.0 | 3 |" in md
    assert csv_path.read_text().count("\n") == 4  # header + 3 groups


def test_leaderboard_never_mixes_recipes_as_seeds(tmp_path):
    write_record(make_record(0, 0.8, config_sha="recipe-a"), tmp_path)
    write_record(make_record(0, 0.6, config_sha="recipe-b"), tmp_path)
    table = build_leaderboard(load_records(tmp_path))
    assert sorted(table["best"]) == [0.6, 0.8] and list(table["runs"]) == [1, 1]
