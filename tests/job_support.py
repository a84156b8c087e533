"""Files for prediction-job tests."""

from __future__ import annotations

IRIS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def iris_csv(rows: int, *, bad: dict[int, str] | None = None) -> bytes:
    """`rows` data rows (with an extra `species` column, which jobs ignore); `bad` maps a row
    number (from 1) to the text of its sepal_length."""
    lines = [",".join((*IRIS, "species"))]
    for number in range(1, rows + 1):
        first = (bad or {}).get(number, f"{4.3 + (number % 36) / 10:.1f}")
        lines.append(",".join([first, "3.1", f"{1 + number % 6}.2", "0.4", "setosa"]))
    return ("\n".join(lines) + "\n").encode()
