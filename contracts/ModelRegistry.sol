// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IModelRegistry} from "../interfaces/IModelRegistry.sol";

/// @title Model registry
/// @notice On-chain provenance for models: who owns which weights, where they are stored, what an inference
/// costs, which verification modes its receipts may use, and where it comes from.
///
/// A model's id is its registrant's address, its content hash, its ZKML verifier and its verifying-key
/// digest, hashed together: changing the ZKML binding yields a new id (a new version, never an in-place
/// edit), and nobody can register, and so own, deprecate or reprice, the id another account computed for
/// itself. Copying a pending registration from the mempool only registers the copier's own id, under which
/// nobody else settles. Registration is permissionless.
/// A child names an existing parent: a *version* (parent's owner only) joins the parent's family, a
/// *fork* (anyone) starts a family of its own. Parents are immutable and must exist first, so the lineage
/// is a forest and can never contain a cycle.
contract ModelRegistry is IModelRegistry {
    uint256 public constant BPS = 10_000;
    uint256 public constant MAX_ROYALTY_BPS = 2_000;
    uint8 public constant ALL_MODES = 7;

    mapping(bytes32 modelId => Model) private _models;
    mapping(bytes32 modelId => address) private _pendingOwners;
    mapping(bytes32 modelId => bytes32[]) private _children;
    mapping(bytes32 family => bytes32[]) private _versions;
    mapping(bytes32 modelId => uint256) private _deprecatedAt;

    error ModelRegistryEmptyContentHash();
    error ModelRegistryAlreadyRegistered(bytes32 modelId);
    error ModelRegistryUnknownModel(bytes32 modelId);
    error ModelRegistryUnknownParent(bytes32 parent);
    error ModelRegistryCycle(bytes32 modelId);
    error ModelRegistryInvalidPolicy(uint8 allowedModes, Mode minimumMode);
    error ModelRegistryZeroVerifier();
    error ModelRegistryVerifierWithoutZkml(address zkVerifier);
    error ModelRegistryRoyaltyTooHigh(uint16 royaltyBps, uint256 maximum);
    error ModelRegistryRoyaltyWithoutParent();
    error ModelRegistryNotOwner(bytes32 modelId, address account);
    error ModelRegistryNotPendingOwner(bytes32 modelId, address account);
    error ModelRegistryNotFamilyOwner(bytes32 parent, address account);
    error ModelRegistryDeprecated(bytes32 modelId);

    modifier onlyModelOwner(bytes32 modelId) {
        address owner = _models[modelId].owner;
        if (owner == address(0)) revert ModelRegistryUnknownModel(modelId);
        if (owner != msg.sender) revert ModelRegistryNotOwner(modelId, msg.sender);
        _;
    }

    /// @inheritdoc IModelRegistry
    function register(ModelSpec calldata spec) external returns (bytes32 modelId) {
        if (spec.contentHash == bytes32(0)) revert ModelRegistryEmptyContentHash();
        _checkPolicy(spec);
        modelId = modelIdOf(msg.sender, spec.contentHash, spec.zkVerifier, spec.verifyingKeyDigest);
        if (_models[modelId].owner != address(0)) revert ModelRegistryAlreadyRegistered(modelId);

        bytes32 family = modelId;
        if (spec.parent != bytes32(0)) {
            if (spec.parent == modelId) revert ModelRegistryCycle(modelId);
            Model storage parent = _models[spec.parent];
            if (parent.owner == address(0)) revert ModelRegistryUnknownParent(spec.parent);
            if (spec.royaltyBps > MAX_ROYALTY_BPS) revert ModelRegistryRoyaltyTooHigh(spec.royaltyBps, MAX_ROYALTY_BPS);
            if (spec.sameFamily) {
                if (parent.owner != msg.sender) revert ModelRegistryNotFamilyOwner(spec.parent, msg.sender);
                family = parent.family;
            }
            _children[spec.parent].push(modelId);
        } else if (spec.royaltyBps != 0) {
            revert ModelRegistryRoyaltyWithoutParent();
        }

        _models[modelId] = Model({
            owner: msg.sender,
            allowedModes: spec.allowedModes,
            minimumMode: spec.minimumMode,
            deprecated: false,
            royaltyBps: spec.royaltyBps,
            registeredAt: SafeCast.toUint48(block.timestamp),
            zkVerifier: spec.zkVerifier,
            contentHash: spec.contentHash,
            parent: spec.parent,
            family: family,
            verifyingKeyDigest: spec.verifyingKeyDigest,
            price: spec.price,
            uri: spec.uri
        });
        _versions[family].push(modelId);
        emit ModelRegistered(modelId, msg.sender, spec.parent, family, spec.contentHash);
    }

    /// @inheritdoc IModelRegistry
    function setUri(bytes32 modelId, string calldata uri) external onlyModelOwner(modelId) {
        _models[modelId].uri = uri;
        emit ModelUriChanged(modelId, uri);
    }

    /// @inheritdoc IModelRegistry
    function setPrice(bytes32 modelId, uint256 price) external onlyModelOwner(modelId) {
        emit ModelPriceChanged(modelId, _models[modelId].price, price);
        _models[modelId].price = price;
    }

    /// @notice Deprecate a model for good: it accepts no new receipts; its record stays readable. Only this id
    /// is affected: the same content registered by anyone else is another id.
    function deprecate(bytes32 modelId) external onlyModelOwner(modelId) {
        if (_models[modelId].deprecated) revert ModelRegistryDeprecated(modelId);
        _models[modelId].deprecated = true;
        _deprecatedAt[modelId] = block.timestamp;
        emit ModelDeprecated(modelId);
    }

    /// @notice Start a two-step ownership transfer; `newOwner` must call `acceptOwnership`.
    /// Passing the zero address cancels a pending transfer.
    function transferOwnership(bytes32 modelId, address newOwner) external onlyModelOwner(modelId) {
        _pendingOwners[modelId] = newOwner;
        emit ModelOwnershipTransferStarted(modelId, msg.sender, newOwner);
    }

    /// @inheritdoc IModelRegistry
    function acceptOwnership(bytes32 modelId) external {
        if (_pendingOwners[modelId] != msg.sender || msg.sender == address(0)) {
            revert ModelRegistryNotPendingOwner(modelId, msg.sender);
        }
        address previous = _models[modelId].owner;
        _models[modelId].owner = msg.sender;
        delete _pendingOwners[modelId];
        emit ModelOwnershipTransferred(modelId, previous, msg.sender);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IModelRegistry
    function modelIdOf(address registrant, bytes32 contentHash, address zkVerifier, bytes32 verifyingKeyDigest)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(registrant, contentHash, zkVerifier, verifyingKeyDigest));
    }

    /// @inheritdoc IModelRegistry
    function model(bytes32 modelId) external view returns (Model memory) {
        if (_models[modelId].owner == address(0)) revert ModelRegistryUnknownModel(modelId);
        return _models[modelId];
    }

    /// @inheritdoc IModelRegistry
    function exists(bytes32 modelId) external view returns (bool) {
        return _models[modelId].owner != address(0);
    }

    /// @inheritdoc IModelRegistry
    function acceptsMode(bytes32 modelId, Mode mode) external view returns (bool) {
        Model storage m = _models[modelId];
        return m.owner != address(0) && !m.deprecated && (m.allowedModes & _modeBit(mode)) != 0 && mode >= m.minimumMode;
    }

    /// @inheritdoc IModelRegistry
    function refusalOf(bytes32 modelId, Mode mode) external view returns (Refusal) {
        Model storage m = _models[modelId];
        if (m.owner == address(0)) return Refusal.UnknownModel;
        if (m.deprecated) return Refusal.Deprecated;
        if ((m.allowedModes & _modeBit(mode)) == 0 || mode < m.minimumMode) return Refusal.ModeNotAccepted;
        return Refusal.None;
    }

    /// @inheritdoc IModelRegistry
    function policyAccepts(bytes32 modelId, Mode mode) external view returns (bool) {
        Model storage m = _models[modelId];
        return (m.allowedModes & _modeBit(mode)) != 0 && mode >= m.minimumMode;
    }

    /// @inheritdoc IModelRegistry
    function registeredAt(bytes32 modelId) external view returns (uint256) {
        return _models[modelId].registeredAt;
    }

    /// @inheritdoc IModelRegistry
    function deprecatedAt(bytes32 modelId) external view returns (uint256) {
        return _deprecatedAt[modelId];
    }

    /// @inheritdoc IModelRegistry
    function zkVerifierOf(bytes32 modelId) external view returns (address) {
        return _models[modelId].zkVerifier;
    }

    /// @inheritdoc IModelRegistry
    function paymentTerms(bytes32 modelId)
        external
        view
        returns (address owner, uint16 royaltyBps, address royaltyRecipient)
    {
        Model storage m = _models[modelId];
        owner = m.owner;
        if (owner == address(0)) revert ModelRegistryUnknownModel(modelId);
        royaltyBps = m.royaltyBps;
        if (royaltyBps != 0) royaltyRecipient = _models[m.parent].owner;
    }

    /// @inheritdoc IModelRegistry
    function pendingOwner(bytes32 modelId) external view returns (address) {
        return _pendingOwners[modelId];
    }

    /// @inheritdoc IModelRegistry
    function childCount(bytes32 modelId) external view returns (uint256) {
        return _children[modelId].length;
    }

    /// @inheritdoc IModelRegistry
    function children(bytes32 modelId, uint256 offset, uint256 limit) external view returns (bytes32[] memory) {
        return _slice(_children[modelId], offset, limit);
    }

    /// @inheritdoc IModelRegistry
    function versionCount(bytes32 family) external view returns (uint256) {
        return _versions[family].length;
    }

    /// @inheritdoc IModelRegistry
    function versions(bytes32 family, uint256 offset, uint256 limit) external view returns (bytes32[] memory) {
        return _slice(_versions[family], offset, limit);
    }

    /// @inheritdoc IModelRegistry
    function lineage(bytes32 modelId, uint256 maxLength) external view returns (bytes32[] memory ids) {
        if (_models[modelId].owner == address(0)) revert ModelRegistryUnknownModel(modelId);
        ids = new bytes32[](maxLength);
        uint256 length;
        for (bytes32 id = modelId; id != bytes32(0) && length < maxLength; id = _models[id].parent) {
            ids[length++] = id;
        }
        assembly ("memory-safe") {
            mstore(ids, length)
        }
    }

    // ---------------------------------------------------------------- internals

    function _checkPolicy(ModelSpec calldata spec) private pure {
        uint8 allowed = spec.allowedModes;
        if (allowed == 0 || allowed & ~ALL_MODES != 0 || allowed & _modeBit(spec.minimumMode) == 0) {
            revert ModelRegistryInvalidPolicy(allowed, spec.minimumMode);
        }
        bool zkml = allowed & _modeBit(Mode.Zkml) != 0;
        if (zkml && (spec.zkVerifier == address(0) || spec.verifyingKeyDigest == bytes32(0))) {
            revert ModelRegistryZeroVerifier();
        }
        if (!zkml && (spec.zkVerifier != address(0) || spec.verifyingKeyDigest != bytes32(0))) {
            revert ModelRegistryVerifierWithoutZkml(spec.zkVerifier);
        }
    }

    function _modeBit(Mode mode) private pure returns (uint8) {
        return uint8(1 << uint8(mode));
    }

    function _slice(bytes32[] storage list, uint256 offset, uint256 limit) private view returns (bytes32[] memory out) {
        uint256 start = Math.min(offset, list.length);
        uint256 end = start + Math.min(limit, list.length - start);
        out = new bytes32[](end - start);
        for (uint256 i = start; i < end; ++i) {
            out[i - start] = list[i];
        }
    }
}
