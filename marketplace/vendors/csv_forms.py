"""The vendor CSV import form: a file was chosen. What is in it is the import service's call."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired


class CsvImportForm(FlaskForm):
    file = FileField(
        "CSV file (UTF-8, at most 1 MB and 2,000 rows)",
        validators=[FileRequired("Choose a CSV file.")],
        render_kw={"accept": ".csv,text/csv"},
    )
