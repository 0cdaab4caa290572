"""Run the hw build steps: one model in, intermediate models and a time per step out."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from hw.config import HwBuildConfig
from hw.names import keep_user_names, tag_user_names
from hw.steps import PRESETS, STEPS
from hw.toolchain import finn_environment
from qphy.errors import ConfigError, HwStepError
from qphy.qonnx_io import load_model  # noqa: F401 - hw.runner.load_model stays importable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HwBuildResult:
    """What a hw build left behind."""

    build_dir: Path
    model: ModelWrapper
    step_times_s: dict[str, float]

    @property
    def rtl_dir(self) -> Path:
        return self.build_dir / "rtl"

    @property
    def report_path(self) -> Path:
        return self.build_dir / "hw_report.json"


def _select(cfg: HwBuildConfig) -> list[str]:
    names = PRESETS[cfg.preset]
    for which in (cfg.start_step, cfg.stop_step):
        if which is not None and which not in names:
            raise ConfigError(f"step '{which}' not in preset {cfg.preset.value}: {names}")
    start = names.index(cfg.start_step) if cfg.start_step else 0
    stop = names.index(cfg.stop_step) + 1 if cfg.stop_step else len(names)
    return names[start:stop]


def run_build(model_path: Path, cfg: HwBuildConfig, build_dir: Path | None = None) -> HwBuildResult:
    """Run the configured steps on ``model_path``; outputs go to ``build_dir`` (or cfg.build_dir).

    With ``cfg.start_step``, the intermediate model of the step before it is loaded instead.
    """
    build_dir = Path(build_dir or cfg.build_dir or "build/hw").resolve()
    cfg = dataclasses.replace(cfg, build_dir=build_dir)
    inter = build_dir / "intermediate"
    inter.mkdir(parents=True, exist_ok=True)
    names = _select(cfg)
    all_names = list(STEPS)
    if cfg.start_step and all_names.index(names[0]) > 0:
        prev_idx = all_names.index(names[0]) - 1
        prev = inter / f"{prev_idx + 1:02d}_{all_names[prev_idx]}.onnx"
        model = load_model(prev)
    else:
        model = load_model(Path(model_path))
    times: dict[str, float] = {}
    tag_user_names(model)
    with finn_environment(build_dir), keep_user_names():
        for name in names:
            t0 = time.perf_counter()
            log.info("hw step %s", name)
            try:
                model = STEPS[name](model, cfg)
            except AssertionError as exc:  # FINN states most of its refusals as asserts
                why = str(exc).strip() or "an internal check failed"
                raise HwStepError(f"hw step {name}: FINN refused the model: {why}") from exc
            times[name] = round(time.perf_counter() - t0, 3)
            model.save(str(inter / f"{all_names.index(name) + 1:02d}_{name}.onnx"))
            log.info("hw step %s done in %.2f s", name, times[name])
    (build_dir / "step_times.json").write_text(json.dumps(times, indent=1))
    return HwBuildResult(build_dir=build_dir, model=model, step_times_s=times)
