"""The outcome files `modelql outcomes import` reads: a clear error naming the file (and line)
for whatever cannot be read, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelql.outcome_files import OutcomeFileError, read_outcomes

HEADER = b"request_id,batch_index,label\n"


def test_rows_become_outcome_requests(tmp_path: Path):
    path = tmp_path / "truth.csv"
    path.write_bytes(HEADER + b"order-42,0,virginica\n")

    [outcome] = read_outcomes(path)

    assert (outcome.request_id, outcome.batch_index, outcome.label) == ("order-42", 0, "virginica")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (HEADER + b"order-42,0,caf\xe9\n", "not UTF-8 text"),
        (HEADER + b"order-42,0," + b"x" * 200_000 + b"\n", "field larger than field limit"),
        (HEADER + b"order-42,zero,setosa\n", "line 2"),
        (b"colour\nred\n", "columns must be among"),
    ],
    ids=["latin-1", "huge-field", "bad-number", "unknown-column"],
)
def test_an_unreadable_file_is_a_clear_error(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "truth.csv"
    path.write_bytes(content)

    with pytest.raises(OutcomeFileError) as refused:
        read_outcomes(path)

    assert str(path) in str(refused.value)
    assert message in str(refused.value)
