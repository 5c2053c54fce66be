"""Shared test helpers (importable because pytest puts tests/ on sys.path)."""


def make_record(seed, mAP, model="Baseline [resnet101]", dataset="voc2007", source="real", **extra):
    record = {
        "paper": "cmsg", "table": "table1", "row": "ResNet-101", "model": model, "dataset": dataset,
        "task": "multilabel", "split": "test", "metrics": {"mAP": mAP, "CF1": mAP / 2, "OF1": mAP / 3, "AP": [mAP, None]},
        "label_names": ["cat", "dog"], "data_source": source, "config": {"seed_everything": seed, "model": {"lr": 1}},
        "config_sha": "x", "git_sha": "y", "seed": seed, "started": f"2026-11-22T10:00:0{seed}+00:00",
        "wall_s": 1.0, "hardware": "cpu", "n_train": 10, "n_test": 5,
    }
    record.update(extra)
    return record
