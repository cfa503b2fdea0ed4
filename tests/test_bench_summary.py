"""bench/summary.py: the table of current benchmark figures, built from results JSON files (temporary ones here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SUMMARY = Path(__file__).resolve().parent.parent / "bench" / "summary.py"
spec = importlib.util.spec_from_file_location("bench_summary", SUMMARY)
summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summary)


def row(what: str, topic: str | None = None, **extra) -> dict:
    fields = {
        "what": what,
        "peer": "the Trainer",
        "figure": "0.9 vs 0.8",
        "date": "2026-12-06",
        "command": "bench/x.py",
    }
    return {**fields, **({"topic": topic} if topic else {}), **extra}


def write(path: Path, data) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> dict:
    results, docs = tmp_path / "results", tmp_path / "docs"
    results.mkdir()
    (docs / "benchmarks").mkdir(parents=True)
    page = docs / "benchmarks" / "index.md"
    page.write_text(
        f"# Benchmarks\n\nBefore.\n\n{summary.START} -->\nold table\n{summary.END}\n\nAfter.\n", encoding="utf-8"
    )
    return {"results": results, "docs": docs, "page": page}


def run(site: dict) -> str:
    assert summary.main(["--results", str(site["results"]), "--docs", str(site["docs"]), str(site["page"])]) == 0
    return site["page"].read_text(encoding="utf-8")


def test_rows_of_every_results_file_fill_the_table_in_topic_order(site):
    write(site["results"] / "b-figures.json", {"rows": [row("b deploy", "Deploy"), row("b other", "Zebra")]})
    write(
        site["results"] / "a-figures.json", {"rows": [row("a tagging", "Tagging", details="benchmarks/history.md#t")]}
    )
    write(
        site["results"] / "c-figures.json",
        {"recorded_in": "BENCHMARKS.md", "rows": [row("c fine | tuning", "Fine-tuning")]},
    )
    write(site["results"] / "raw.json", {"accuracy": [0.9, 0.8]})  # a benchmark's raw output: no rows, skipped
    write(site["results"] / "list.json", [1, 2])

    text = run(site)
    lines = [line for line in text.splitlines() if line.startswith("| ") and "topic |" not in line]
    assert [line.split(" | ")[0] for line in lines] == ["| Fine-tuning", "| Tagging", "| Deploy", "| Zebra"]
    assert "c fine \\| tuning" in lines[0]  # a pipe inside a cell cannot split it
    assert "a tagging ([details](../benchmarks/history.md#t))" in lines[1]
    assert lines[2].endswith("| 2026-12-06 | `bench/x.py` |")
    assert text.startswith("# Benchmarks\n\nBefore.\n") and text.endswith("\n\nAfter.\n")
    assert "old table" not in text

    page_time = site["page"].stat().st_mtime_ns
    assert run(site) == text  # deterministic: a second run changes nothing ...
    assert site["page"].stat().st_mtime_ns == page_time  # ... and does not even rewrite the file


def test_a_target_outside_docs_links_details_into_docs(site, tmp_path):
    write(site["results"] / "a.json", {"rows": [row("a", "Data", details="benchmarks/history.md#a")]})
    root_page = tmp_path / "BENCHMARKS.md"
    root_page.write_text(f"{summary.START} -->\n{summary.END}\n", encoding="utf-8")
    summary.main(["--results", str(site["results"]), "--docs", str(site["docs"]), str(root_page)])
    assert "([details](docs/benchmarks/history.md#a))" in root_page.read_text(encoding="utf-8")


def test_no_rows_yet_still_gives_a_table(site):
    assert "no figures recorded" in run(site)


def test_a_row_without_a_required_key_names_the_file_and_row(site):
    incomplete = row("b")
    del incomplete["command"]
    write(site["results"] / "bad.json", {"rows": [row("a"), incomplete]})
    with pytest.raises(ValueError, match=r"bad\.json: row 2 lacks command"):
        run(site)


def test_a_target_without_markers_is_refused(site):
    site["page"].write_text("# Benchmarks\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no table markers"):
        run(site)
