"""benchmarks/_host.py: the resumable row writer the training-photo fits share."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _host import append_rows  # noqa: E402


def test_append_rows_resumes_where_the_rows_end(tmp_path):
    rows = tmp_path / "fit" / "rows.jsonl"
    made = []

    def make_row(path, index):
        made.append(index)
        return {"index": index, "name": path.name}

    append_rows(rows, [Path("a.jpg"), Path("b.jpg")], 5.0, make_row)
    append_rows(rows, [Path("a.jpg"), Path("b.jpg"), Path("c.jpg")], 5.0, make_row)
    assert made == [0, 1, 2]
    assert [json.loads(x)["name"] for x in rows.read_text().splitlines()] == ["a.jpg", "b.jpg", "c.jpg"]


def test_append_rows_stops_when_out_of_time(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    append_rows(rows, [Path("a.jpg")], -1.0, lambda path, index: {"index": index})
    assert not rows.read_text()
    assert "run again to resume" in capsys.readouterr().err
