"""Writes scenarios/demo.xlsx, the demo's scenario table (run from the repository root).

The workbook is committed; this script documents how it was made and remakes it.
"""

from pathlib import Path

from openpyxl import Workbook

SHEETS = {
    "prep": [
        ["instance", "flow", "scenario", "growth", "regions_file", "# note"],
        ["low", "examples/flows/prep.py", "low", 0.005, "examples/data/regions.csv", "slow growth"],
        ["central", "examples/flows/prep.py", "central", 0.01, "examples/data/regions.csv", ""],
        ["high", "examples/flows/prep.py", "high", 0.02, "examples/data/regions.csv",
         "exceeds capacity"],
    ],
    "model": [
        ["instance", "flow", "scenario", "prepared_file", "efficiency_gain"],
        ["{scenario}", "examples/flows/model.py", "low", "runs/prep/{scenario}/prepared.csv", 0],
        ["{scenario}", "examples/flows/model.py", "central", "runs/prep/{scenario}/prepared.csv",
         0],
        ["{scenario}", "examples/flows/model.py", "high", "runs/prep/{scenario}/prepared.csv", 0],
    ],
    "report": [
        ["instance", "flow", "demand_files", "title"],
        ["all", "examples/builds/report.py", "runs/model/*/demand.csv", "Demand by scenario"],
    ],
}


def main() -> None:
    book = Workbook()
    book.remove(book.active)
    for name, rows in SHEETS.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        for column in sheet.columns:
            sheet.column_dimensions[column[0].column_letter].width = 22
    target = Path(__file__).with_name("demo.xlsx")
    book.save(target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
