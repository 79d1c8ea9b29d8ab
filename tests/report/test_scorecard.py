"""bench.report.scorecard.build_report and ``bench report``: files, a self-contained page, missing inputs."""

from __future__ import annotations

import argparse
import re

import pandas as pd
import pytest
from fake_run import RESAMPLES
from fake_run import METRICS, make_fake_run

from bench.report.cli import add_commands
from bench.report.scorecard import build_report

TABLES = {"leaderboard.csv", "leaderboard_overall.csv", "leaderboard.md", "classification.csv",
          "classification.md", "sanity_summary.csv", "scorecard.html"}


def test_build_report_writes_every_file(full_run):
    run, paths = full_run
    assert TABLES <= set(paths)
    figures = {n for n in paths if n.startswith("figures/")}
    assert {f"figures/bar_ff_vgg19_{m}.png" for m in METRICS} <= figures
    assert {"figures/curves_ff_vgg19_deletion.png", "figures/curves_ff_vgg19_insertion.png",
            "figures/sanity_ff_vgg19.png", "figures/gallery_lidc_idri.jpg"} <= figures
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0 and p.parent in (run, run / "figures")
    board = pd.read_csv(paths["leaderboard.csv"])
    assert set(board["metric"]) == set(METRICS)


def test_scorecard_is_self_contained(full_run):
    _, paths = full_run
    page = paths["scorecard.html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    srcs = re.findall(r'\bsrc="([^"]*)"', page)
    assert srcs and all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in srcs)
    assert len(srcs) == sum(1 for n in paths if n.startswith("figures/"))
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "<style>" in page


def test_scorecard_contains_the_tables(full_run):
    _, paths = full_run
    page = paths["scorecard.html"].read_text()
    for text in ("Overall ranking", "How to read this", "Deletion, insertion and ROAD", "Sanity checks",
                 "Classification", "Gallery", "Errors and exclusions", "434e9e2", "2 min 03 s"):
        assert text in page, text
    for m in METRICS:
        assert f">{m} " in page  # a section per metric
    assert "(lower is better)" in page and "82.52" in page and "phantom" in page
    board = pd.read_csv(paths["leaderboard.csv"])
    best = board[(board["metric"] == "iou") & (board["dataset"] == "lidc_idri")].sort_values("rank").iloc[0]
    assert f"{best['mean']:.3f}" in page
    assert '<td class="fail">fail</td>' in page and '<td class="pass">pass</td>' in page
    assert "CUDA out of memory &lt;script&gt;" in page and "<script>" not in page  # escaped


def test_trust_section_has_the_metric_agreement_matrix(full_run):
    from bench.report.trust import AGREEMENT_MEANING

    run, paths = full_run
    page = paths["scorecard.html"].read_text()
    assert "How far to trust this ranking" in page and AGREEMENT_MEANING.replace("'", "&#x27;") in page
    assert "figures/agreement_ff_vgg19.png" in paths
    ag = pd.read_csv(paths["metric_agreement.csv"])
    assert set(ag["metric_a"]) == set(METRICS) and "overall" in set(ag["scope"])
    diag = ag[(ag["metric_a"] == ag["metric_b"]) & ag["tau"].notna()]
    assert len(diag) > 0 and diag["tau"].to_numpy() == pytest.approx(1.0)
    assert ("Isolated metrics" in page) or ("No metric is isolated" in page)


def test_missing_optional_inputs_are_notes_not_crashes(tmp_path):
    run = make_fake_run(tmp_path / "run", curves=False, sanity=False, gallery=False, classification=False,
                        errors=False, run_json=False, metrics=["iou", "deletion"])
    paths = build_report(run, n_resamples=50)
    assert {"leaderboard.csv", "leaderboard.md", "scorecard.html"} <= set(paths)
    first = {n: paths[n].read_text() for n in ("leaderboard.csv", "leaderboard.md", "scorecard.html")}
    again = build_report(run, out_dir=tmp_path / "again", n_resamples=50)
    assert {n: again[n].read_text() for n in first} == first  # rebuilt byte for byte
    assert not {"classification.md", "sanity_summary.csv"} & set(paths)
    page = paths["scorecard.html"].read_text()
    for text in ("No run.json", "No curves.parquet", "No sanity.parquet", "No classification.parquet",
                 "No gallery", "No problems recorded"):
        assert text in page, text
    assert all(s.startswith("data:") for s in re.findall(r'\bsrc="([^"]*)"', page))


def test_stale_outputs_are_removed_and_bad_gallery_is_reported(tmp_path):
    run = make_fake_run(tmp_path / "run", curves=False, sanity=False, metrics=["iou"])
    (run / "gallery" / "synthetic-ham10000.npz").unlink()
    assert (build_report(run, n_resamples=20)["classification.md"]).is_file()
    (run / "classification.parquet").unlink()
    (run / "gallery" / "lidc_idri.npz").write_bytes(b"not a zip file")
    paths = build_report(run, n_resamples=20)
    assert not (run / "classification.md").exists() and not (run / "classification.csv").exists()
    assert not (run / "figures" / "gallery_lidc_idri.jpg").exists()
    page = paths["scorecard.html"].read_text()
    assert "lidc_idri.npz could not be read" in page
    assert "gallery_synthetic-cov_ct.jpg" in {p.name for p in paths.values()}


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.parquet"):
        build_report(tmp_path)


def test_cli_report_command(tmp_path, capsys):
    run = make_fake_run(tmp_path / "run", curves=False, sanity=False, gallery=False, metrics=["iou"])
    parser = argparse.ArgumentParser(prog="bench")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(run), "--out", str(tmp_path / "out"), "--resamples", "20"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "scorecard.html" in out and "leaderboard.md" in out
    assert (tmp_path / "out" / "scorecard.html").is_file()


def test_an_empty_results_table_gives_a_page_that_says_so(tmp_path):
    from fake_run import fake_results

    fake_results(metrics=["iou"]).iloc[:0].to_parquet(tmp_path / "results.parquet")
    paths = build_report(tmp_path, n_resamples=20)
    assert "(no results)" in paths["leaderboard.md"].read_text()
    assert "no scored rows" in paths["scorecard.html"].read_text()
