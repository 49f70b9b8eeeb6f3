"""Export a report to a temporary CSV file for download."""

import csv
import tempfile


def export_rows(rows: list[list[str]]) -> str:
    path = tempfile.mktemp(suffix=".csv")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path
