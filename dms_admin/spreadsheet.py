"""CSV cells that a spreadsheet opens as text, never as a formula (CSV injection, OWASP): event
messages carry names that come from agents (check names), so a cell may start with `=`."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """The cell as text; one starting like a formula gets a leading apostrophe, which spreadsheets
    read as "this is text" and do not display."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def safe_row(values) -> list[str]:
    return [safe_cell(value) for value in values]
