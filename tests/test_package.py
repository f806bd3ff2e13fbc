"""``import torchgeo_moemae`` stays light: it registers the timm models and loads no heavy stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("rasterio", "pyproj", "matplotlib", "kornia", "torchgeo.datasets", "lightning", "sklearn")
#: what ``moemae --help`` does not need either (torch alone takes seconds to import)
FRAMEWORKS = ("torch", "timm")


def test_import_loads_no_heavy_module() -> None:
    code = (
        "import sys, timm, torchgeo_moemae\n"
        "assert 'moemae_landsat_xxs' in timm.list_models('moemae*')\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_models_register_when_timm_is_imported_later() -> None:
    code = (
        "import sys, torchgeo_moemae\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('timm') is not None  # an availability check\n"
        "import timm\n"
        "print(timm.create_model('moemae_landsat_xxs').__class__.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "MoEMAEEncoder"


def test_help_loads_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from torchgeo_moemae.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(','.join(m for m in {HEAVY + FRAMEWORKS!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "" and "embed" in done.stdout
