"""``make gpu-check``: does bench run right on a CUDA GPU, how fast, and how close to the CPU?

    python -m bench.perf.gpu_check [--out reports/gpu-check.md] [--device cuda] [--tiny] [--budget 450]

On a machine with a CUDA GPU, in this order, each step within its time budget (:data:`BUDGET_S`, 450 s in
all: the whole check fits in 8 minutes on one data-centre GPU; a step that would overrun is cut short and
the report says so):

1. ``tests``: the ``cuda`` tests (``pytest tests/cuda -m cuda``) in a child process;
2. ``train``: the ``paper`` preset (full-width FF-VGG19 at 224 px, the authors' network) on one phantom at
   its full size (``synthetic-pet_ct``, the paper's Table 1 counts: 172 images), fold 0 of 10, for 3
   epochs; then two 2-step runs of one seed (bit-identical with ``train.deterministic``?) and 2 epochs with
   ``train.deterministic = false`` (what determinism costs);
3. ``explain``: every method, with the ``paper`` suite's options, on 32 images (test split first), cheapest
   first; a method whose estimated time (its passes per image x the measured time of a pass) exceeds what
   is left of the budget is skipped and named;
4. ``score``: the localisation metrics and deletion/insertion (the suite's steps) of every method's maps;
5. ``agreement``: GPU and CPU maps of the same weights on 4 images per method (Spearman and Pearson per
   image, max |GPU - CPU| absolute and relative to max |CPU map|), the GPU run repeated (0 = bit-identical),
   and deletion/insertion of one map on both devices.

It writes ``reports/gpu-check.md`` (and every number in ``gpu-check.json`` beside it): the device, wall
time, images/s of train, explain per method and score, peak GPU memory per step
(``torch.cuda.max_memory_allocated``) and the agreement table. Without a GPU it prints one line and exits
with status 2; ``--device cpu --tiny`` runs every step on the CPU at toy size (32 px, width 0.125, 4 images;
about a minute) to check the script itself. Exit status 1: a step failed or a ``cuda`` test failed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.device import CUBLAS_WORKSPACE, set_deterministic

BUDGET_S = {"tests": 150.0, "train": 70.0, "explain": 110.0, "score": 55.0, "agreement": 55.0}
TOTAL_S = 450.0  # all steps; + start-up and writing the report: under 8 minutes
TINY_BUDGET_S = {"tests": 0.0, "train": 25.0, "explain": 20.0, "score": 10.0, "agreement": 15.0}
TESTS_DIR = Path(__file__).resolve().parents[2] / "tests" / "cuda"
DATASET = "synthetic-pet_ct"  # the smallest phantom at the paper's counts (61 + 111 images)


def log(msg: str) -> None:
    print(f"gpu-check: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# measuring


@dataclass
class Clock:
    """The check's deadline and each step's share of it."""

    total: float
    budgets: dict[str, float]
    start: float = field(default_factory=time.perf_counter)
    over: list[str] = field(default_factory=list)  # "step: what was cut" lines for the report

    def left(self) -> float:
        return self.total - (time.perf_counter() - self.start)

    def step(self, name: str) -> float:
        """The deadline (perf_counter) of step ``name``: its budget, or what is left of the total."""
        return time.perf_counter() + max(0.0, min(self.budgets[name], self.left()))

    def cut(self, step: str, what: str) -> None:
        self.over.append(f"{step}: {what}")
        log(f"over budget: {step}: {what}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float:
    """Peak memory since :func:`reset_peak`, MB: the GPU's allocated memory, or the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def map_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How close maps ``a`` and ``b`` ``(N, H, W)`` are (``b`` the reference, e.g. the CPU's or float32's).

    Returns ``spearman`` and ``pearson``: the means over images of the per-image rank and linear
    correlations (NaN where a map is constant in either: no ranking to compare), ``min_spearman``,
    ``max_abs_diff`` (over all pixels) and ``rel_diff`` = max |a - b| / max |b| (0 where both are all 0).
    """
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        raise ValueError(f"map shapes differ: {a64.shape} vs {b64.shape}")
    from scipy.stats import rankdata

    sp, pe = [], []
    for x, y in zip(a64.reshape(len(a64), -1), b64.reshape(len(b64), -1)):
        if not (np.isfinite(x).all() and np.isfinite(y).all()) or np.ptp(x) == 0 or np.ptp(y) == 0:
            sp.append(math.nan)
            pe.append(math.nan)
            continue
        pe.append(float(np.corrcoef(x, y)[0, 1]))
        sp.append(float(np.corrcoef(rankdata(x), rankdata(y))[0, 1]))
    diff = float(np.abs(a64 - b64).max()) if a64.size else math.nan
    scale = float(np.abs(b64).max()) if b64.size else math.nan
    ok = [s for s in sp if not math.isnan(s)]
    return {"spearman": float(np.mean(ok)) if ok else math.nan, "min_spearman": min(ok) if ok else math.nan,
            "pearson": float(np.nanmean(pe)) if ok else math.nan, "max_abs_diff": diff,
            "rel_diff": diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf),
            "n_constant": len(sp) - len(ok)}


# --------------------------------------------------------------------------------------------------
# the steps


def check_config(device: str, root: str, tiny: bool):
    """The run configuration of the check: the ``paper`` preset on :data:`DATASET` (toy size with ``tiny``)."""
    from bench.config import load_run_config

    sets = [f"data.dataset={DATASET}", f"data.root='{root}'", f"train.device='{device}'", "train.epochs=3",
            "data.phantom_scale=1.0"]
    if tiny:
        sets += ["data.image_size=32", "model.width=0.125", "model.head_units=64", "model.batch_norm=true",
                 "train.epochs=1", "data.phantom_scale=0.2"]
    return load_run_config("paper", sets)


def run_tests(deadline: float) -> dict[str, Any]:
    """The ``cuda`` tests in a child process, stopped at ``deadline``."""
    if not TESTS_DIR.is_dir():
        return {"status": "skipped", "why": f"{TESTS_DIR} not found (an installed copy without tests)"}
    cmd = [sys.executable, "-m", "pytest", str(TESTS_DIR), "-m", "cuda", "-q", "-p", "no:randomly", "-rfEs"]
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, deadline - t0), env=env,
                              cwd=TESTS_DIR.parents[1])
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return {"status": "timeout", "seconds": time.perf_counter() - t0, "tail": out[-3000:]}
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    return {"status": "passed" if proc.returncode == 0 else "failed", "returncode": proc.returncode,
            "seconds": time.perf_counter() - t0, "summary": lines[-1] if lines else "",
            "tail": (proc.stdout + proc.stderr)[-3000:] if proc.returncode else ""}


def train_step(cfg, data, device: torch.device, clock: Clock) -> tuple[dict[str, Any], Any]:
    """Fit the check's model; then determinism (two 2-step runs) and its cost (2 epochs without it)."""
    from bench.train import fit

    deadline = clock.step("train")
    reset_peak(device)
    t0 = time.perf_counter()
    res = fit(cfg, data=data, progress=False)
    wall = time.perf_counter() - t0
    hist = res.history
    steady = hist[1:] or hist  # the first epoch pays for kernel selection and caching allocations
    out: dict[str, Any] = {
        "seconds": wall, "epochs": len(hist), "train_images": len(res.split.train),
        "images_per_s": float(np.mean([h["train_images_per_s"] for h in steady])),
        "epoch_seconds": [h["seconds"] for h in hist], "peak_mb": peak_mb(device),
        "test_accuracy": res.metrics.get("accuracy"),
    }
    short = replace(cfg, train=replace(cfg.train, epochs=1, max_steps=2))
    if time.perf_counter() + 2 * (wall / max(len(hist), 1)) < deadline:
        a, b = fit(short, data=data, progress=False), fit(short, data=data, progress=False)
        out["repeat_identical"] = all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(),
                                                                        b.model.state_dict().values()))
    else:
        clock.cut("train", "the repeat (determinism) runs")
    if device.type == "cuda":
        if time.perf_counter() + 2 * (wall / max(len(hist), 1)) < deadline:
            loose = replace(cfg, train=replace(cfg.train, epochs=2, deterministic=False))
            h = fit(loose, data=data, progress=False).history
            out["nondeterministic_images_per_s"] = float(h[-1]["train_images_per_s"])
            set_deterministic(True)
        else:
            clock.cut("train", "the run without deterministic mode")
    return out, res


def _method_options(suite, method: str) -> dict[str, Any]:
    from bench.attribution import METHODS
    from bench.attribution.base import check_options

    opts = check_options(method, dict(suite.explain.options.get(method, {})))
    if METHODS.meta(method).get("stochastic") and "seed" not in suite.explain.options.get(method, {}):
        opts["seed"] = suite.explain.seed
    return opts


def passes(method: str, options: dict[str, Any], channels: int) -> float:
    """Forward-pass equivalents per image (a backward pass counted as two forward passes)."""
    from bench.attribution import method_cost

    c = method_cost(method, channels=channels, **options)
    return float(c.get("forward", 0) + 2 * c.get("backward", 0))


def time_forward(model, x: torch.Tensor) -> float:
    """Seconds of one forward pass per image (no gradients), after a warm-up pass."""
    device = next(model.parameters()).device
    with torch.no_grad():
        model(x)
        synchronize(device)
        t0 = time.perf_counter()
        model(x)
        synchronize(device)
    return (time.perf_counter() - t0) / len(x)


def explain_all(model, x: torch.Tensor, targets: torch.Tensor, method: str, options: dict, layer, batch: int):
    """``explain`` over ``x`` in batches -> CPU numpy maps (N, H, W)."""
    from bench.attribution import explain

    parts = [explain(model, x[s : s + batch], targets[s : s + batch], method, layer=layer, **options).cpu()
             for s in range(0, len(x), batch)]
    return torch.cat(parts).numpy()


def explain_step(model, suite, x, targets, device: torch.device, clock: Clock) -> tuple[dict, dict]:
    """Every method on ``x``, cheapest first, within the step's budget: ``(rows by method, maps by method)``."""
    from bench.attribution import available_methods
    from bench.attribution.base import activations

    deadline = clock.step("explain")
    layer = suite.explain.layer or None
    channels = int(activations(model, x[:1], layer or model.default_cam_layer)[1].shape[1])
    t_pass = time_forward(model, x)
    opts = {m: _method_options(suite, m) for m in available_methods()}
    order = sorted(opts, key=lambda m: passes(m, opts[m], channels))
    rows: dict[str, dict] = {}
    maps: dict[str, np.ndarray] = {}
    for method in order:
        p = passes(method, opts[method], channels)
        estimate = p * len(x) * t_pass
        if time.perf_counter() + estimate > deadline:
            left = max(0.0, deadline - time.perf_counter())
            rows[method] = {"skipped": f"estimated {estimate:.0f} s, {left:.0f} s left"}
            clock.cut("explain", f"{method} ({rows[method]['skipped']})")
            continue
        reset_peak(device)
        t0 = time.perf_counter()
        maps[method] = explain_all(model, x, targets, method, opts[method], layer, suite.explain.batch_size)
        s = time.perf_counter() - t0
        rows[method] = {"seconds": s, "images_per_s": len(x) / s, "passes_per_image": p, "peak_mb": peak_mb(device),
                        "finite": bool(np.isfinite(maps[method]).all())}
    return {"rows": rows, "seconds_per_pass": t_pass, "channels": channels, "options": opts}, maps


def score_step(model, suite, x, targets, masks: np.ndarray, maps: dict, device, clock: Clock) -> dict:
    """Localisation metrics and deletion/insertion of every method's maps."""
    from bench.metrics import METRICS, deletion_insertion, localisation_metrics

    deadline = clock.step("score")
    sc = suite.score
    loc_options = {"pointing_game": {"tolerance": sc.pointing_tolerance}, "iou": {"threshold": sc.iou_threshold}}
    t_pass = time_forward(model, x)
    rows: dict[str, dict] = {}
    for method, m in maps.items():
        estimate = (2 * sc.deletion_steps + 1) * len(x) * t_pass
        if time.perf_counter() + estimate > deadline:
            rows[method] = {"skipped": f"estimated {estimate:.0f} s"}
            clock.cut("score", f"{method} ({rows[method]['skipped']})")
            continue
        t0 = time.perf_counter()
        for metric in localisation_metrics():
            METRICS.get(metric)(m, masks, return_degenerate=True, **loc_options.get(metric, {}))
        t_loc = time.perf_counter() - t0
        reset_peak(device)
        t0 = time.perf_counter()
        di = deletion_insertion(model, x, torch.from_numpy(m).to(device), targets, steps=sc.deletion_steps,
                                batch_size=sc.deletion_batch_size)
        synchronize(device)
        t_di = time.perf_counter() - t0
        rows[method] = {"localisation_seconds": t_loc, "deletion_insertion_seconds": t_di,
                        "images_per_s": len(x) / (t_loc + t_di), "peak_mb": peak_mb(device),
                        "deletion": float(np.mean(di["deletion"])), "insertion": float(np.mean(di["insertion"]))}
    return {"rows": rows, "steps": sc.deletion_steps}


def agreement_step(model, suite, x, targets, opts: dict, methods: list[str], device, clock: Clock, n: int) -> dict:
    """GPU vs CPU maps of the same weights on ``n`` images, and the GPU run repeated."""
    from bench.metrics import deletion_insertion

    deadline = clock.step("agreement")
    layer = suite.explain.layer or None
    cpu_model = copy.deepcopy(model).cpu().eval()
    xs, ts = x[:n], targets[:n]
    xc, tc = xs.cpu(), ts.cpu()
    t_cpu = time_forward(cpu_model, xc)
    from bench.attribution.base import activations

    channels = int(activations(cpu_model, xc[:1], layer or cpu_model.default_cam_layer)[1].shape[1])
    rows: dict[str, dict] = {}
    for method in methods:
        estimate = passes(method, opts[method], channels) * n * t_cpu
        if time.perf_counter() + estimate > deadline:
            rows[method] = {"skipped": f"estimated {estimate:.0f} s on the CPU"}
            clock.cut("agreement", f"{method} ({rows[method]['skipped']})")
            continue
        g1 = explain_all(model, xs, ts, method, opts[method], layer, n)
        g2 = explain_all(model, xs, ts, method, opts[method], layer, n)
        c = explain_all(cpu_model, xc, tc, method, opts[method], layer, n)
        rows[method] = {**map_agreement(g1, c), "repeat_max_abs_diff": float(np.abs(g1 - g2).max())}
    out: dict[str, Any] = {"rows": rows, "images": n}
    first = next((m for m in ("grad_cam", *methods) if m in rows and "skipped" not in rows[m]), None)
    steps = suite.score.deletion_steps
    if first and time.perf_counter() + (2 * steps + 1) * n * t_cpu < deadline:
        sal = torch.from_numpy(explain_all(model, xs, ts, first, opts[first], layer, n))
        dg = deletion_insertion(model, xs, sal.to(device), ts, steps=steps)
        dc = deletion_insertion(cpu_model, xc, sal, tc, steps=steps)
        out["deletion_insertion"] = {
            "method": first, "steps": steps,
            "max_abs_diff_deletion": float(np.abs(dg["deletion"] - dc["deletion"]).max()),
            "max_abs_diff_insertion": float(np.abs(dg["insertion"] - dc["insertion"]).max()),
            "max_abs_diff_curves": float(max(np.abs(dg["deletion_curve"] - dc["deletion_curve"]).max(),
                                             np.abs(dg["insertion_curve"] - dc["insertion_curve"]).max())),
        }
    elif first:
        clock.cut("agreement", "deletion/insertion on both devices")
    return out


# --------------------------------------------------------------------------------------------------
# the report


def device_info(device: torch.device) -> dict[str, Any]:
    info = {"device": str(device), "torch": torch.__version__, "cuda_build": torch.version.cuda or "none",
            "cpu_threads": torch.get_num_threads(), "platform": platform.platform()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(name=p.name, memory_gb=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
                    cudnn=torch.backends.cudnn.version(), tf32_conv=torch.backends.cudnn.allow_tf32,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def _table(header: list[str], rows: dict[str, dict], cells) -> list[str]:
    """Markdown lines of a per-method table: ``cells(values)`` gives a row's cells after the method name; a row
    whose values hold ``skipped`` says why it was skipped instead."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m, v in rows.items():
        rest = [f"skipped: {v['skipped']}", *[""] * (len(header) - 2)] if "skipped" in v else cells(v)
        lines.append("| " + " | ".join([m, *rest]) + " |")
    return lines


def _f(v, fmt: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def report_md(r: dict[str, Any]) -> str:
    info, mem = r["device"], "GPU memory" if r["device"]["device"].startswith("cuda") else "RSS (process)"
    L = ["# GPU check", "",
         f"- device: **{info.get('name')}** ({info['device']}; torch {info['torch']}, CUDA build {info['cuda_build']}"
         + (f", capability {info['capability']}, {info['memory_gb']} GB, cuDNN {info['cudnn']}"
            if "capability" in info else "")
         + f"; {info['cpu_threads']} CPU threads)",
         f"- run: {r['mode']}",
         (f"- settings: train.deterministic on (cuDNN deterministic, no benchmark, deterministic algorithms, "
          f"CUBLAS_WORKSPACE_CONFIG={os.environ.get('CUBLAS_WORKSPACE_CONFIG', 'unset')}); TF32 convolutions "
          f"{'on' if info.get('tf32_conv') else 'off'}, TF32 matmuls {'on' if info.get('tf32_matmul') else 'off'} "
          "(torch's defaults)" if "capability" in info else
          "- settings: the CPU (deterministic with a fixed thread count; \"GPU\" below means this device)"),
         f"- wall time: {r['seconds']:.0f} s (budget {r['budget_s']:.0f} s)"
         + ("; **stopped early**: " + "; ".join(r["over"]) if r["over"] else "; every step finished in its budget"),
         ""]
    t = r.get("tests", {})
    L += ["## cuda tests", "", f"{t.get('status', '-')}: {t.get('summary') or t.get('why', '')} "
          f"({_f(t.get('seconds'), '.0f')} s)", ""]
    if t.get("tail"):
        L += ["```", t["tail"].strip(), "```", ""]
    if "error" in r:
        L += ["## Error", "", "```", r["error"].strip(), "```", ""]
    tr = r.get("train")
    if tr:
        L += ["## Train", "",
              f"| epochs | train images | wall s | images/s (epochs 2+) | peak {mem} MB | test accuracy |",
              "|---|---|---|---|---|---|",
              f"| {tr['epochs']} | {tr['train_images']} | {tr['seconds']:.1f} | {tr['images_per_s']:.1f} | "
              f"{tr['peak_mb']:.0f} | {_f(tr.get('test_accuracy'), '.2f')} |", ""]
        if "repeat_identical" in tr:
            same = "bit-identical" if tr["repeat_identical"] else "**differ**"
            L.append(f"- same seed twice (2 steps): weights {same}")
        if "nondeterministic_images_per_s" in tr:
            nd = tr["nondeterministic_images_per_s"]
            L.append(f"- train.deterministic = false: {nd:.1f} images/s (deterministic mode costs "
                     f"{100 * (1 - tr['images_per_s'] / nd):.0f} %)")
        L.append("")
    ex = r.get("explain")
    if ex:
        L += [f"## Explain ({r['n_images']} images, batch {r['batch_size']}; one pass = "
              f"{1000 * ex['seconds_per_pass']:.2f} ms per image)", ""]
        L += _table(["method", "seconds", "images/s", "passes/image", f"peak {mem} MB", "finite"], ex["rows"],
                    lambda v: [f"{v['seconds']:.2f}", f"{v['images_per_s']:.1f}", f"{v['passes_per_image']:.0f}",
                               f"{v['peak_mb']:.0f}", str(v["finite"])])
        L.append("")
    sc = r.get("score")
    if sc:
        L += [f"## Score (localisation metrics; deletion/insertion, {sc['steps']} steps)", ""]
        L += _table(["method", "localisation s", "deletion/insertion s", "images/s", f"peak {mem} MB", "deletion",
                     "insertion"], sc["rows"],
                    lambda v: [f"{v['localisation_seconds']:.2f}", f"{v['deletion_insertion_seconds']:.2f}",
                               f"{v['images_per_s']:.1f}", f"{v['peak_mb']:.0f}", f"{v['deletion']:.3f}",
                               f"{v['insertion']:.3f}"])
        L.append("")
    ag = r.get("agreement")
    if ag:
        L += [f"## GPU vs CPU maps (same weights, {ag['images']} images)", "",
              "Spearman / Pearson: mean over images of the per-image correlation of the GPU and CPU maps (NaN: "
              "constant maps); max |diff|: over all pixels, also relative to max |CPU map|; repeat: max |diff| "
              "of two GPU runs (0 = bit-identical).", ""]
        L += _table(["method", "Spearman", "min Spearman", "Pearson", "max abs diff", "relative", "constant maps",
                     "repeat"], ag["rows"],
                    lambda v: [_f(v["spearman"], ".5f"), _f(v["min_spearman"], ".5f"), _f(v["pearson"], ".5f"),
                               _f(v["max_abs_diff"], ".2e"), _f(v["rel_diff"], ".2e"), str(v["n_constant"]),
                               _f(v["repeat_max_abs_diff"], ".2e")])
        di = ag.get("deletion_insertion")
        if di:
            L += ["", f"Deletion/insertion of the {di['method']} maps on both devices ({di['steps']} steps): max "
                  f"|GPU - CPU| {di['max_abs_diff_deletion']:.2e} (deletion AUC), {di['max_abs_diff_insertion']:.2e} "
                  f"(insertion AUC), {di['max_abs_diff_curves']:.2e} (any curve point)."]
        L.append("")
    L += ["Expected (README, \"Running on a GPU\"): repeat = 0 (one GPU, train.deterministic on: bit-identical). "
          "GPU vs CPU: close, never bit-identical; tests/cuda holds float32 maps (TF32 off) to Pearson >= 0.999 and "
          "max |diff| <= 1% of the map's maximum, and deletion/insertion to 1e-4 (2e-2 with TF32). With TF32 "
          "convolutions (torch's default on Ampere and later) the differences above are larger; rank correlations "
          "are lowest for pixel-gradient maps and maps with flat regions.", ""]
    return "\n".join(L)


# --------------------------------------------------------------------------------------------------


def run(args) -> dict[str, Any]:
    from bench.data import load_dataset
    from bench.sweep.suite import load_suite
    from bench.train import ensure_prepared

    device = torch.device(args.device)
    budgets = TINY_BUDGET_S if args.tiny else BUDGET_S
    clock = Clock(args.budget if args.budget else (sum(budgets.values()) if args.tiny else TOTAL_S), budgets)
    n_images, n_agree = (4, 2) if args.tiny else (32, 4)
    r: dict[str, Any] = {"budget_s": clock.total, "n_images": n_images, "over": clock.over}
    if device.type == "cuda" and not args.skip_tests:
        log(f"cuda tests (budget {budgets['tests']:.0f} s)")
        r["tests"] = run_tests(clock.step("tests"))
        if r["tests"]["status"] == "timeout":
            clock.cut("tests", f"stopped after {r['tests']['seconds']:.0f} s")
        log(f"cuda tests: {r['tests']['status']} {r['tests'].get('summary', '')}")
    else:
        r["tests"] = {"status": "skipped", "why": "--device cpu" if device.type != "cuda" else "--skip-tests"}
    if device.type == "cuda":
        set_deterministic(True)
    r["device"] = device_info(device)
    root = args.data_root or tempfile.mkdtemp(prefix="bench-gpu-check-")
    cfg = check_config(args.device, root, args.tiny)
    r["mode"] = (f"paper preset, {DATASET} ({'toy size' if args.tiny else 'full size'}), "
                 f"{cfg.data.image_size} px, FF-VGG19 width {cfg.model.width}, fold 0 of {cfg.data.folds}, "
                 f"{cfg.train.epochs} epoch(s), batch {cfg.train.batch_size}")
    suite = load_suite("paper", ["explain.batch_size=32"])
    r["batch_size"] = suite.explain.batch_size
    try:
        log("preparing the phantom")
        ensure_prepared(cfg)
        data = load_dataset(cfg.data.dataset, root=cfg.data.root, image_size=cfg.data.image_size)
        log(f"train ({len(data.ids)} images at {cfg.data.image_size} px)")
        r["train"], res = train_step(cfg, data, device, clock)
        model = res.model.eval()
        index = {i: n for n, i in enumerate(data.ids)}
        test = {index[i] for i in res.test_ids}
        order = sorted(test) + [j for j in range(len(data.ids)) if j not in test]  # test images first
        picked = [j for j in order if bool(data.has_mask[j])][:n_images]
        x = data.images[picked].to(device)
        targets = torch.as_tensor([int(data.labels[j]) for j in picked], device=device)
        masks = data.masks[picked].numpy()
        r["n_images"] = len(picked)
        log(f"explain: every method on {len(picked)} images")
        r["explain"], maps = explain_step(model, suite, x, targets, device, clock)
        log("score")
        r["score"] = score_step(model, suite, x, targets, masks, maps, device, clock)
        log(f"agreement with the CPU on {n_agree} images")
        r["agreement"] = agreement_step(model, suite, x, targets, r["explain"]["options"], list(maps), device, clock,
                                        n_agree)
        r["explain"].pop("options")
    except Exception:  # noqa: BLE001 - the report says what failed, the exit status too
        import traceback

        r["error"] = traceback.format_exc()
        log(f"failed: {r['error'].strip().splitlines()[-1]}")
    r["seconds"] = time.perf_counter() - clock.start
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perf.gpu_check", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="reports/gpu-check.md")
    ap.add_argument("--device", default="cuda", help="cuda[:i] (default), or cpu to check the script itself")
    ap.add_argument("--tiny", action="store_true", help="toy sizes (32 px, width 0.125, 4 images): about a minute")
    ap.add_argument("--budget", type=float, default=0.0, help="seconds for all steps (default 450; tiny: 70)")
    ap.add_argument("--skip-tests", action="store_true", help="do not run the cuda tests first")
    ap.add_argument("--data-root", default="", help="where the phantom is prepared (default: a temp folder)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # before the first CUDA call
        if not torch.cuda.is_available():
            build = (f"torch {torch.__version__} is a CPU-only build: install a CUDA build (TORCH_SPEC, README "
                     "'Running on a GPU')" if torch.version.cuda is None else f"torch {torch.__version__} sees no GPU")
            print(f"gpu-check: no CUDA GPU on this machine ({build}); run `make gpu-check` where there is one, or "
                  "`python -m bench.perf.gpu_check --device cpu --tiny` to check the script here", file=sys.stderr)
            return 2
    elif device.type != "cpu":
        ap.error(f"--device {args.device!r}: use cuda[:i] or cpu")
    r = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_md(r))
    out.with_suffix(".json").write_text(json.dumps(r, indent=1, default=str))
    failed = "error" in r or r["tests"].get("status") == "failed"
    log(f"wrote {out} ({r['seconds']:.0f} s{'; stopped early' if r['over'] else ''}"
        f"{'; FAILED' if failed else ''})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
