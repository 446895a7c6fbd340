"""Which packages the wheel holds, found rather than listed (everything else is in pyproject.toml).

Every folder with an ``__init__.py`` under ``sdshape/`` is a package, so a new one needs no edit here or in
pyproject.toml. The top-level ``backends/`` folder (the project's layout) installs as ``sdshape.backends``, with
any subpackage under it, so no generic top-level package named ``backends`` lands in site-packages.
pyproject.toml's own ``packages.find`` cannot say that: it names each package after its folder, which is why
discovery lives here. ``tests/project/test_packaging.py`` checks the result against the folders.
"""

from setuptools import find_packages, setup

# The one folder installed under another name: its import name, and where it lives.
RENAMED = {"sdshape.backends": "backends"}


def packages() -> list[str]:
    """``sdshape`` and its subpackages, and each renamed folder's packages under their import names."""
    found = find_packages(include=["sdshape", "sdshape.*"])
    for name, folder in RENAMED.items():
        found += [name + package.removeprefix(folder) for package in find_packages(include=[folder, f"{folder}.*"])]
    return sorted(found)


if __name__ == "__main__":  # setuptools runs this file as __main__; the test reads packages() without building
    setup(packages=packages(), package_dir=RENAMED)
