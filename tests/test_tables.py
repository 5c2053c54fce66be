"""Paper tables: the paper's typed numbers beside the suite's numbers from records."""
import yaml

from fashionbench.records import write_record
from fashionbench.tables import render_target
from helpers import make_record


def test_table_quotes_paper_and_fills_ours_from_records(tmp_path):
    bench = tmp_path / "benchmarks" / "demo"
    bench.mkdir(parents=True)
    (bench / "paper.yaml").write_text(yaml.safe_dump({
        "paper": "cmsg", "title": "Demo paper",
        "tables": {"table1": {
            "title": "VOC", "dataset": "voc2007", "percent": True, "columns": ["AP:cat", "AP:dog", "mAP"],
            "reported": [{"row": "Paper method", "source": "Demo, Table 2, row X", "values": {"mAP": 95.4}}],
            "ours": [{"row": "ResNet-101"}, {"row": "Never run"}],
        }},
        "reproduce": {"table1": {"tables": ["table1"], "runs": []}},
    }))
    runs = tmp_path / "runs"
    for seed, value in enumerate([0.5, 0.7, 0.6]):
        write_record(make_record(seed, value, source="synthetic"), runs)
    path = render_target("demo", "table1", runs_dir=runs, out_dir=tmp_path / "tables", benchmarks_dir=tmp_path / "benchmarks")
    text = path.read_text()
    assert path.name == "demo_table1.md"
    assert "| Paper method | Demo, Table 2, row X | — | — | 95.4 | — |" in text
    # median over seeds of AP:cat (= mAP in make_record) is 60.0; dog has no AP; mAP with spread
    assert "| 60.0 | — | 60.0 (50.0 ← → 70.0) | 0 1 2 |" in text
    assert "SYNTHETIC" in text
    assert "| Never run | this suite: no run record yet |" in text
