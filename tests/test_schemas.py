"""Model output is untrusted: what the schemas refuse, with a message naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.schemas import ReadFiles


def test_read_files_takes_paths_and_line_ranges() -> None:
    ask = ReadFiles.model_validate({"ranges": [{"path": "a.py", "start": 3, "end": 3}]})
    assert ask.paths == [] and (ask.ranges[0].start, ask.ranges[0].end) == (3, 3)
    assert ReadFiles.model_validate({"paths": ["a.py"]}).ranges == []


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({}, "give at least one path or line range"),
        ({"ranges": [{"path": "a.py", "start": 5, "end": 2}]}, "end 2 is before start 5"),
        ({"ranges": [{"path": "a.py", "start": 0, "end": 2}]}, "greater than or equal to 1"),
        ({"ranges": [{"path": "a.py", "start": "x", "end": 2}]}, "valid integer"),
        ({"ranges": [{"path": "a.py", "start": 1}]}, "Field required"),
        ({"ranges": [{"path": "a.py", "start": 1, "end": 2, "x": 1}]}, "Extra inputs"),
        ({"ranges": [{"path": "a.py", "start": 1, "end": 2}] * 9}, "at most 8 items"),
        ({"paths": ["a.py"], "lines": "1-3"}, "Extra inputs"),
    ],
)
def test_read_files_refuses_bad_ranges(raw: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        ReadFiles.model_validate(raw)
