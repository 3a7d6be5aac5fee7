"""The Teams app package an admin uploads (sideloads): manifest and icons in one zip.

The manifest template in `manifest/` names the bot by its Azure app id; this fills in the
deployment's values and checks them, so a typo fails here rather than in Teams' upload dialog.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

TEMPLATE_DIR = Path(__file__).resolve().parent / "manifest"
ICONS = ("color.png", "outline.png")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class AppPackageError(ValueError):
    """A value the manifest needs is missing or malformed."""


def build_app_package(app_id: str, endpoint: str, company: str, website: str) -> bytes:
    """The zip Teams accepts: `manifest.json`, `color.png` and `outline.png` at its root."""
    if not _GUID.match(app_id or ""):
        raise AppPackageError(f"MICROSOFT_APP_ID must be the Azure app id (a GUID), not {app_id!r}")
    domain = urlsplit(endpoint if "//" in endpoint else f"https://{endpoint}").hostname
    if not domain:
        raise AppPackageError(f"not a host name or URL: {endpoint!r}")
    if not website.startswith("https://"):
        raise AppPackageError(f"the website must be an https:// URL, not {website!r}")
    values = {
        "MICROSOFT_APP_ID": app_id.lower(),
        "BOT_DOMAIN": domain,
        "COMPANY_NAME": company,
        "WEBSITE_URL": website,
    }
    template = (TEMPLATE_DIR / "manifest.json").read_text(encoding="utf-8")
    filled = re.sub(r"\{\{(\w+)\}\}", lambda m: json.dumps(values[m[1]])[1:-1], template)
    json.loads(filled)  # the template stays valid JSON whatever the values hold
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", filled)
        for icon in ICONS:
            package.write(TEMPLATE_DIR / icon, icon)
    return buffer.getvalue()
