"""The quick-suite section of reports/perf.md, from a run.json written by a run and then a re-run."""

import json

from bench.perf.report import quick_suite_md


def _run_json(path, *, ran, seconds, computing):
    path.write_text(json.dumps({"git_revision": "abc", "seconds_total": seconds, "peak_rss_mb": 900.0,
                                "finished": "t2", "stats": {"ran": ran, "compute_seconds_by_stage": {"train": 200.0}},
                                "computing_run": computing}))


def test_a_rerun_is_reported_against_the_run_that_computed_the_results(tmp_path):
    path = tmp_path / "run.json"
    first = {"seconds_total": 450.0, "peak_rss_mb": 2500.0, "finished": "t1", "ran": {"train": 7}}
    _run_json(path, ran={}, seconds=9.0, computing=first)
    text = "\n".join(quick_suite_md(path))
    assert "| 7.5 min | < 15 min: met |" in text  # the computing run's wall time, not the re-run's 9 s
    assert "| 2.44 GB | < 4 GB: met |" in text
    assert "| 9.0 s = 2.0 % | < 5 %: met |" in text
    assert "| train jobs (stored job times) | 200 s |" in text


def test_a_run_that_computed_is_its_own_record_and_a_slow_rerun_is_a_miss(tmp_path):
    path = tmp_path / "run.json"
    _run_json(path, ran={"train": 7}, seconds=1000.0, computing=None)
    text = "\n".join(quick_suite_md(path))
    assert "| 16.7 min | < 15 min: missed |" in text and "immediate re-run | run `bench run quick` again" in text
    _run_json(path, ran={}, seconds=60.0, computing={"seconds_total": 1000.0, "peak_rss_mb": 100.0})
    assert "| 60.0 s = 6.0 % | < 5 %: missed |" in "\n".join(quick_suite_md(path))


def test_the_suite_wide_dominant_stage_comes_from_the_stored_job_times(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"suite": {"datasets": ["a", "b"]}, "seconds_total": 100.0, "peak_rss_mb": 1.0,
                                "stats": {"ran": {"train": 2},
                                          "compute_seconds_by_stage": {"train": 60.0, "explain": 30.0, "score": 10.0}}}))
    assert "Across the suite's 2 datasets **train** takes the most compute (60 s of 100 s, 60 %)" in "\n".join(
        quick_suite_md(path))
