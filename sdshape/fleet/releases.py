"""The releases of a package between two versions, from the package index's JSON API (PyPI's by default).

``sdshape bisect`` searches them. Versions compare as PEP 440 says (``packaging.version``), not as text
(4.10 comes after 4.9); a release whose every file is yanked, or which has no files, is no candidate;
pre-releases are left out unless asked for. Each wrong input is one line: an unknown package, a
version the index does not list, good equal to bad, bad before good.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from packaging.version import InvalidVersion, Version

from sdshape.core.errors import UsageError

PYPI_JSON = "https://pypi.org/pypi"
TIMEOUT_S = 30.0


def index_document(package: str, base_url: str = PYPI_JSON) -> dict[str, Any]:
    """The index's JSON page for ``package``; an unknown package or an unreachable index is one line."""
    url = f"{base_url.rstrip('/')}/{package}/json"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise UsageError(f"--package {package}: no such package on {base_url}") from None
        raise UsageError(f"--package {package}: {url} answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise UsageError(f"--package {package}: cannot reach {url} ({getattr(error, 'reason', error)})") from None


def published(document: dict[str, Any], pre: bool = False) -> list[str]:
    """Every release with a file that is not yanked, oldest first (pre-releases only with ``pre``)."""
    found = []
    for text, files in (document.get("releases") or {}).items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if files and any(not f.get("yanked") for f in files) and (pre or not version.is_prerelease):
            found.append(version)
    return [str(v) for v in sorted(found)]


def between(package: str, good: str, bad: str, listed: list[str], pre: bool = False) -> list[str]:
    """The releases from ``good`` to ``bad``, both included, oldest first; wrong input is one line."""
    try:
        good_version, bad_version = Version(good), Version(bad)
    except InvalidVersion as error:
        raise UsageError(f"bisect: {error}; give release numbers such as 0.40.0") from None
    if good_version == bad_version:
        raise UsageError(f"--good {good} and --bad {bad} are the same release: nothing to bisect")
    if bad_version < good_version:
        raise UsageError(f"--bad {bad} comes before --good {good}: bisect looks for a slowdown from good to bad")
    for flag, version in (("--good", good_version), ("--bad", bad_version)):
        if version.is_prerelease and not pre:
            raise UsageError(f"{flag} {version} is a pre-release: add --pre to search pre-releases")
        if str(version) not in listed:
            near = ", ".join(listed[-8:])
            raise UsageError(f"{flag} {version}: {package} has no such release on the index (latest: {near})")
    return [v for v in listed if good_version <= Version(v) <= bad_version]
