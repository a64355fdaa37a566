"""The installed package holds every module of the checkout (a sub-package missing from setup.cfg
would work from the checkout and be absent from site-packages)."""

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    data = cfg["options.package_data"]["s3prl_emoaware"].split()
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "s3prl_emoaware").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    shipped_as_data = {
        name for name in on_disk if any(Path(*name.split(".")[1:]).match(pattern.rsplit("/", 1)[0]) for pattern in data)
    }
    missing = sorted(on_disk - listed - shipped_as_data)
    assert not missing, f"add to setup.cfg [options] packages: {missing}"
