"""Sending email: SMTP when MAIL_URL is set, else an .eml file per message in instance/mail/."""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlparse

from flask import current_app


def build(to: str, subject: str, text: str, html: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def mail_dir() -> Path:
    return Path(current_app.config.get("MAIL_DIR") or Path(current_app.instance_path) / "mail")


def send(message: EmailMessage, key: str) -> None:
    url = current_app.config["MAIL_URL"]
    if not url:
        folder = mail_dir()
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        (folder / f"{safe}.eml").write_bytes(bytes(message))
        return
    parts = urlparse(url)
    smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with smtp_class(parts.hostname or "localhost", parts.port or 25, timeout=10) as smtp:
        if parts.scheme == "smtp+starttls":
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)
