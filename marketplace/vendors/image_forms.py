"""Vendor image forms: upload (file + alt text), alt text, move, delete.

Shape only: a file was chosen, the alt text is short. Whether the file is an image, its type
and size are decided by the image service from the bytes, whatever the file is called.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, StringField
from wtforms.validators import AnyOf, Length, Optional

ALT_HINT = "Say what the picture shows, for people who cannot see it."


class ImageUploadForm(FlaskForm):
    file = FileField(
        "Image (JPEG, PNG or WebP, at most 5 MB)",
        validators=[FileRequired("Choose an image file.")],
        render_kw={"accept": "image/jpeg,image/png,image/webp"},
    )
    alt_text = StringField(
        "Alt text", validators=[Optional(), Length(max=200)], description=ALT_HINT
    )


class ImageAltForm(FlaskForm):
    alt_text = StringField("Alt text", validators=[Optional(), Length(max=200)])


class ImageMoveForm(FlaskForm):
    direction = HiddenField(validators=[AnyOf(["up", "down"])])


class ImageDeleteForm(FlaskForm):
    """Only the CSRF token: the button is the whole form."""
