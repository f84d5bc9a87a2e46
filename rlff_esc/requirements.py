"""Installed dependencies checked against the versions the package declares, before any command runs.

Images built for GPUs often come with their own transformers, TRL or torch, and a package installed
into them with ``--no-deps`` keeps those. An older one fails deep inside a run: transformers before
5.23 has no ``activation_checkpointing`` training argument, so the SFT warm-up stops with a
``TypeError`` after the critic has been trained (seen on a GPU image with transformers 5.17). The
declared ranges (``pyproject.toml``) are the one place the minimum versions are written.
"""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import Requirement

from rlff_esc.errors import RlffError

DISTRIBUTION = "rlff-esc"


def unmet(distribution: str = DISTRIBUTION) -> list[tuple[str, str, str]]:
    """(name, installed version, declared range) of each dependency installed outside its range;
    extras, and packages not installed at all, are left to pip and to the import that needs them."""
    try:
        declared = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return []
    out = []
    for line in declared:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            out.append((requirement.name, installed, str(requirement.specifier)))
    return out


def check() -> None:
    """Raise a :class:`RlffError` that names every dependency out of range and the command that fixes it."""
    problems = unmet()
    if problems:
        found = "; ".join(f"{name} {installed} is installed, {DISTRIBUTION} needs {name}{spec}"
                          for name, installed, spec in problems)
        wanted = " ".join(f"'{name}{spec}'" for name, _, spec in problems)
        raise RlffError(f"{found}. Install the declared versions: pip install {wanted}")
