// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Model registry interface
/// @notice Models with provenance: content hash, storage URI, owner, price, verification policy, lineage,
/// and for ZKML the verifier contract and its verifying key digest.
interface IModelRegistry {
    /// @notice How a receipt's output is covered, weakest first.
    enum Mode {
        Vanilla,
        Tee,
        Zkml
    }

    /// @notice What a registrant supplies. `parent` is zero for a root model.
    /// @param contentHash sha256 of the model blob (ONNX file or weights archive); must not be zero.
    /// @param uri Where the blob is stored (ipfs://, https://, ...).
    /// @param price Price per inference in OPG wei.
    /// @param allowedModes Bit mask of accepted modes, bit `1 << uint8(mode)` per mode.
    /// @param minimumMode The weakest mode accepted; must itself be allowed.
    /// @param parent The model this one derives from, or zero.
    /// @param sameFamily With a parent: true for a new version (parent's owner only), false for a fork.
    /// @param royaltyBps Share of each fee owed to the parent's owner; zero without a parent.
    /// @param zkVerifier The proof verifier contract, required exactly when ZKML is allowed.
    /// @param verifyingKeyDigest Digest of the verifier's verifying key, required with `zkVerifier`.
    struct ModelSpec {
        bytes32 contentHash;
        string uri;
        uint256 price;
        uint8 allowedModes;
        Mode minimumMode;
        bytes32 parent;
        bool sameFamily;
        uint16 royaltyBps;
        address zkVerifier;
        bytes32 verifyingKeyDigest;
    }

    /// @notice Why a model refuses a receipt in some mode, checked in this order.
    enum Refusal {
        None,
        UnknownModel,
        Deprecated,
        ModeNotAccepted
    }

    /// @notice A registered model.
    struct Model {
        address owner;
        uint8 allowedModes;
        Mode minimumMode;
        bool deprecated;
        uint16 royaltyBps;
        uint48 registeredAt;
        address zkVerifier;
        bytes32 contentHash;
        bytes32 parent;
        bytes32 family;
        bytes32 verifyingKeyDigest;
        uint256 price;
        string uri;
    }

    event ModelRegistered(
        bytes32 indexed modelId, address indexed owner, bytes32 indexed parent, bytes32 family, bytes32 contentHash
    );
    event ModelUriChanged(bytes32 indexed modelId, string uri);
    event ModelPriceChanged(bytes32 indexed modelId, uint256 previousPrice, uint256 price);
    event ModelDeprecated(bytes32 indexed modelId);
    event ModelOwnershipTransferStarted(bytes32 indexed modelId, address indexed owner, address indexed pendingOwner);
    event ModelOwnershipTransferred(bytes32 indexed modelId, address indexed previousOwner, address indexed newOwner);

    /// @notice Register a model owned by the caller, under `modelIdOf(msg.sender, spec.contentHash,
    /// spec.zkVerifier, spec.verifyingKeyDigest)`; reverts `ModelRegistryAlreadyRegistered` if the caller
    /// registered that id before.
    function register(ModelSpec calldata spec) external returns (bytes32 modelId);
    function setUri(bytes32 modelId, string calldata uri) external;
    function setPrice(bytes32 modelId, uint256 price) external;
    function deprecate(bytes32 modelId) external;
    function transferOwnership(bytes32 modelId, address newOwner) external;
    function acceptOwnership(bytes32 modelId) external;

    /// @notice The id `registrant` registers a spec under: `keccak256(abi.encode(registrant, contentHash,
    /// zkVerifier, verifyingKeyDigest))`. The registrant is the account that calls `register` (the model's
    /// first owner; the id stays when ownership moves), so an id can be computed before registering, and no
    /// one else can take it: another account registering the same spec gets an id of its own.
    function modelIdOf(address registrant, bytes32 contentHash, address zkVerifier, bytes32 verifyingKeyDigest)
        external
        pure
        returns (bytes32);
    function model(bytes32 modelId) external view returns (Model memory);
    function exists(bytes32 modelId) external view returns (bool);
    /// @notice True when the model exists, is not deprecated, allows `mode` and `mode` meets its minimum.
    function acceptsMode(bytes32 modelId, Mode mode) external view returns (bool);
    /// @notice Why the model refuses a receipt in `mode` now (`None` when it accepts it): one storage read.
    function refusalOf(bytes32 modelId, Mode mode) external view returns (Refusal);
    /// @notice True when the model's policy (which never changes) allows `mode` and `mode` meets its minimum,
    /// deprecated or not; false for an unknown model. One storage read.
    function policyAccepts(bytes32 modelId, Mode mode) external view returns (bool);
    /// @notice When the model was registered (zero for an unknown model).
    function registeredAt(bytes32 modelId) external view returns (uint256);
    /// @notice When the model was deprecated, or zero while it is live.
    function deprecatedAt(bytes32 modelId) external view returns (uint256);
    /// @notice The model's ZKML verifier, or zero for a model without ZKML (or an unknown one). One storage
    /// read, for settlement's proof check; `model` returns the whole record.
    function zkVerifierOf(bytes32 modelId) external view returns (address);
    /// @notice Who is paid for an inference of `modelId`: its owner, and the parent's owner with the royalty share
    /// (`royaltyRecipient` is zero for a root model). Reverts for an unknown model.
    function paymentTerms(bytes32 modelId)
        external
        view
        returns (address owner, uint16 royaltyBps, address royaltyRecipient);
    function pendingOwner(bytes32 modelId) external view returns (address);
    function childCount(bytes32 modelId) external view returns (uint256);
    function children(bytes32 modelId, uint256 offset, uint256 limit) external view returns (bytes32[] memory);
    function versionCount(bytes32 family) external view returns (uint256);
    function versions(bytes32 family, uint256 offset, uint256 limit) external view returns (bytes32[] memory);
    /// @notice `modelId` and its ancestors, nearest first, at most `maxLength` ids.
    function lineage(bytes32 modelId, uint256 maxLength) external view returns (bytes32[] memory);
}
