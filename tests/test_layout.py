"""Every Solidity file in contracts/ is a source ape can see at run time."""

from opgkit import PROJECT_ROOT


def test_contract_sources__listed_by_ape__include_every_project_file(project):
    on_disk = {p for p in (PROJECT_ROOT / "contracts").rglob("*.sol") if ".cache" not in p.parts}
    seen_by_ape = set(project.sources.paths)
    assert on_disk - seen_by_ape == set(), "keep contracts/ flat: ape stops listing sources after 500 files"
