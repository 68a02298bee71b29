"""Every Solidity file in contracts/ is a source ape can see at run time."""

from opgkit import PROJECT_ROOT


def test_contract_sources__listed_by_ape__include_every_project_file(project):
    on_disk = {p for p in (PROJECT_ROOT / "contracts").rglob("*.sol") if ".cache" not in p.parts}
    seen_by_ape = set(project.sources.paths)
    assert on_disk - seen_by_ape == set(), "keep contracts/ flat: ape stops listing sources after 500 files"


# Headroom below EIP-170's 24,576 bytes, so a fix never has to wait for a split.
MAX_RUNTIME_BYTES = 20_480


def test_contract_sizes__every_contract_in_contracts__at_most_20_kib(project):
    sources = {path.name for path in (PROJECT_ROOT / "contracts").glob("*.sol")}
    sizes = {}
    for contract_type in project.load_contracts().values():
        if contract_type.source_id and contract_type.source_id.split("/")[-1] in sources:
            runtime = contract_type.runtime_bytecode.bytecode if contract_type.runtime_bytecode else None
            sizes[contract_type.name] = (len(runtime) - 2) // 2 if runtime else 0
    assert "InferenceSettlement" in sizes and "BatchSettlement" in sizes
    too_big = {name: size for name, size in sizes.items() if size > MAX_RUNTIME_BYTES}
    assert too_big == {}, f"runtime code above {MAX_RUNTIME_BYTES} bytes: {too_big}"
