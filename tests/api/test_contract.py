"""The served schema keeps the API contract of ../shared/contract: every type, field, argument and enum value."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT.parent / "shared" / "contract" / "schema.graphql"
CHECKER = ROOT.parent / "shared" / "tools" / "contract_check.py"


@pytest.mark.skipif(not CONTRACT.exists(), reason="../shared/contract is not beside this checkout")
def test_gridcrew_schema_serves_every_item_of_the_contract(tmp_path: Path) -> None:
    sdl = subprocess.run([sys.executable, "-m", "api.cli", "schema"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    served = tmp_path / "served.graphql"
    served.write_text(sdl)
    result = subprocess.run([sys.executable, str(CHECKER), str(CONTRACT), str(served)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("contract: ")
