"""Learning-rate schedules against values worked by hand."""
import math

import pytest
import torch

from fashionbench.models.optim import OptimConfig, build_optimizer, build_scheduler, lr_factor


def test_step_schedule_decays_at_epoch_boundaries():
    cfg = OptimConfig(schedule="step", step_size=2, gamma=0.1)
    # 10 steps per epoch: epochs 0-1 -> 1, epochs 2-3 -> 0.1, epoch 4 -> 0.01
    assert lr_factor(cfg, 0, 10, 50) == 1.0
    assert lr_factor(cfg, 19, 10, 50) == 1.0
    assert lr_factor(cfg, 20, 10, 50) == pytest.approx(0.1)
    assert lr_factor(cfg, 45, 10, 50) == pytest.approx(0.01)


def test_multistep_with_warmup():
    cfg = OptimConfig(schedule="multistep", milestones=[3, 5], gamma=0.5, warmup_epochs=1)
    # warm-up: linear (step+1)/10 over the first epoch of 10 steps
    assert lr_factor(cfg, 0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(cfg, 4, 10, 100) == pytest.approx(0.5)
    assert lr_factor(cfg, 10, 10, 100) == 1.0
    assert lr_factor(cfg, 30, 10, 100) == 0.5
    assert lr_factor(cfg, 55, 10, 100) == 0.25


def test_cosine_reaches_floor():
    cfg = OptimConfig(schedule="cosine", min_lr_ratio=0.1)
    # halfway: 0.1 + 0.9 * 0.5 * (1 + cos(pi/2)) = 0.55
    assert lr_factor(cfg, 50, 10, 100) == pytest.approx(0.55)
    assert lr_factor(cfg, 100, 10, 100) == pytest.approx(0.1)


def test_onecycle_peaks_at_each_groups_rate():
    w1, w2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    cfg = OptimConfig(name="adam", lr=1e-3, schedule="onecycle", pct_start=0.25)
    opt = build_optimizer(cfg, [{"params": [w1], "lr": 1e-4}, {"params": [w2], "lr": 1e-3}])
    sched = build_scheduler(cfg, opt, total_steps=20, steps_per_epoch=5)
    peaks = [0.0, 0.0]
    for _ in range(20):
        opt.step()
        sched.step()
        peaks = [max(p, g["lr"]) for p, g in zip(peaks, opt.param_groups)]
    assert peaks == pytest.approx([1e-4, 1e-3], rel=1e-3)


def test_empty_groups_are_dropped_and_sgd_settings_kept():
    w = torch.nn.Parameter(torch.zeros(1))
    cfg = OptimConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    opt = build_optimizer(cfg, [{"params": [], "lr": 0.01}, {"params": [w], "lr": 0.1}])
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9
    assert math.isclose(opt.param_groups[0]["weight_decay"], 1e-4)
