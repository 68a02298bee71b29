"""The contracts' layout: every source is one ape compiles, deployables apart from test-only fixtures, sizes."""

from ape.utils import get_all_files_in_directory

from opgkit import PROJECT_ROOT
from opgkit.deploy import ProtocolParameters, deployment_steps

CONTRACTS = PROJECT_ROOT / "contracts"
TEST_ONLY = CONTRACTS / "test"
# ape lists a project's sources by walking the contracts folder and stops at this many files (ape's
# ProjectManager: get_all_files_in_directory(contracts_folder, max_files=500)).
APE_WALK_LIMIT = 500
# Headroom below EIP-170's 24,576 bytes, so a fix never has to wait for a split.
MAX_RUNTIME_BYTES = 20_480


def _sources(folder):
    return {p for p in folder.rglob("*.sol") if ".cache" not in p.parts}


def test_contract_sources__listed_by_ape__include_every_project_file(project):
    seen_by_ape = set(project.sources.paths)
    assert _sources(CONTRACTS) - seen_by_ape == set(), "a source ape does not list is silently not compiled"
    assert _sources(TEST_ONLY), "the test-only contracts are in contracts/test/"


def test_contract_sources__ape_walk__far_below_its_file_limit():
    """The cause, not only the symptom: ape's walk of contracts/ stops at 500 files, so a file walked after the
    cut would go missing. The dependency cache ape-solidity unpacks into contracts/.cache is a link out of the
    folder (opgkit.toolchain.build), which the walk does not follow."""
    walked = get_all_files_in_directory(CONTRACTS)
    assert len(walked) < APE_WALK_LIMIT // 5, f"{len(walked)} files under contracts/: ape stops listing at 500"


def test_deployables__no_test_only_contract_among_them():
    deployed = {step.name for step in deployment_steps("0x" + "11" * 20, "0x" + "22" * 20,
                                                      ProtocolParameters(example_vault_model=b"\x01" * 32))}
    test_only = {p.stem for p in _sources(TEST_ONLY)}
    assert deployed & test_only == set()
    assert deployed <= {p.stem for p in CONTRACTS.glob("*.sol")}, "every deployed contract is a top-level source"
    fixtures = {p.stem for p in CONTRACTS.glob("*.sol") if p.stem.startswith(("Exploit", "Reference", "Benchmark"))}
    assert fixtures == set(), f"test-only contracts belong in contracts/test/: {sorted(fixtures)}"


def test_contract_sizes__every_contract__at_most_20_kib(project):
    sources = {str(path.relative_to(PROJECT_ROOT)) for path in _sources(CONTRACTS)}
    sizes = {}
    for contract_type in project.load_contracts().values():
        if contract_type.source_id in sources:
            runtime = contract_type.runtime_bytecode.bytecode if contract_type.runtime_bytecode else None
            sizes[contract_type.name] = (len(runtime) - 2) // 2 if runtime else 0
    assert {"InferenceSettlement", "BatchSettlement", "InferenceRequests", "ExploitCallbackConsumer"} <= set(sizes)
    too_big = {name: size for name, size in sizes.items() if size > MAX_RUNTIME_BYTES}
    assert too_big == {}, f"runtime code above {MAX_RUNTIME_BYTES} bytes: {too_big}"


def test_dependency_cache__made_in_place__becomes_a_link_out_of_the_walk(tmp_path):
    from opgkit.toolchain.build import keep_dependency_cache_out_of_the_walk

    (tmp_path / "ape-config.yaml").write_text("contracts_folder: contracts\n")
    in_place = tmp_path / "contracts" / ".cache" / "openzeppelin"
    in_place.mkdir(parents=True)
    (in_place / "Token.sol").write_text("// a dependency file")
    (tmp_path / "contracts" / "Mine.sol").write_text("// a project source")

    link = keep_dependency_cache_out_of_the_walk(tmp_path)
    assert link.is_symlink() and link.resolve() == (tmp_path / "build" / "dependency-cache").resolve()
    assert keep_dependency_cache_out_of_the_walk(tmp_path) == link  # idempotent
    (link / "openzeppelin").mkdir()
    (link / "openzeppelin" / "Token.sol").write_text("// unpacked again, through the link")
    assert get_all_files_in_directory(tmp_path / "contracts") == [tmp_path / "contracts" / "Mine.sol"]
