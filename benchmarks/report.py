"""BENCHMARKS.md from the harness's results: machine, every section's tables, and the ratios with verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT


def _table(table: dict[str, Any]) -> list[str]:
    lines = [f"**{table['title']}**", "", "| " + " | ".join(table["header"]) + " |",
             "|" + "---|" * len(table["header"])]  # fmt: skip
    lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
    if table.get("note"):
        lines += ["", table["note"]]
    return [*lines, ""]


def _value(ratio: dict[str, Any]) -> str:
    return "-" if ratio["value"] is None else f"{ratio['value']:.3g}"


def render(report: dict[str, Any], results_path: Path) -> str:
    m = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    try:
        shown = results_path.resolve().relative_to(ROOT)
    except ValueError:
        shown = results_path
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{report['command']}` ({report['mode']} mode, {report['seconds'] / 60:.1f} min) on "
        f"{m['date']}; every number below is also in `{shown}`.",
        "",
        f"- Machine: {m['cpu']}, {m['cpu_count']} CPUs (shared with other jobs while measuring), "
        f"{m['memory_gib']} GiB RAM, GPU: {m['gpu'] or 'none'}; {m['platform']}; commit {m['commit']}.",
        f"- Versions: {versions}.",
        *[f"- Re-run later: {', '.join(u['sections'])} ({u['mode']} mode) on {u['date']}, commit {u['commit']}."
          for u in report.get("updates", [])],
        "- Times are medians over repeats with their range (or IQR); variants that are compared were run "
        "interleaved in the same process so that the machine's slow spells hit all of them alike.",
        "- Reproduce: `make bench` (full, about 16 minutes on 2 cores) or `python -m benchmarks --quick` (a few "
        "minutes, written to runs/benchmarks-quick/). Each section also runs alone: `python -m benchmarks --only NAME`.",
        "",
        "## Ratios and verdicts",
        "",
        "| ratio | value | target | verdict |",
        "|---|---|---|---|",
    ]
    for section in report["sections"]:
        for ratio in section["ratios"]:
            lines.append(f"| {ratio['name']} | {_value(ratio)} | {ratio['target']} | {ratio['verdict']} |")
    lines.append("")
    for section in report["sections"]:
        for ratio in section["ratios"]:
            lines.append(f"- **{ratio['name']}** ({ratio['verdict']}): {ratio['sentence']}")
    lines.append("")
    for section in report["sections"]:
        lines += [f"## {section['title']}", "", f"Command: `{section['command']}` ({section['seconds']:.0f} s).", ""]
        if section["summary"]:
            lines += [section["summary"], ""]
        for table in section["tables"]:
            lines += _table(table)
        if section["data"].get("error"):
            lines += ["```", section["data"]["error"].strip()[-2000:], "```", ""]
    return "\n".join(lines)
