// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Votes} from "@openzeppelin/contracts/governance/utils/Votes.sol";
import {IERC6372} from "@openzeppelin/contracts/interfaces/IERC6372.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";

import {INodeStaking} from "../interfaces/INodeStaking.sol";

/// @title Node staking
/// @notice Operators bond OPG for protocol roles and holders delegate OPG to them. Each operator's pool
/// issues shares against its stake, so slashing lowers the pool's exchange rate in O(1), whatever the
/// number of delegators. Unbonding stake moves to a second share pool of the same operator that a slash
/// hits too, so unbonding cannot dodge a slash: an entry stays slashable until it is withdrawn, which
/// is allowed from its maturity on.
///
/// Rewards are paid per pool when they are earned (settlement pays each price's stakers' share as it splits
/// it): the operator takes its commission at the rate in force then, the rest accrues per bonded share, so
/// only stake bonded at that moment shares in it. Rewards for a pool with no shares, and the non-reporter part
/// of every slash, go to the treasury.
///
/// A slash is recorded in O(1) writes: the evidence, the operator's pending slash (its slot is initialised at
/// registration) and the jail. Its effects on the pool, the totals, the votes and the token balances are
/// applied by `applySlash`, which anyone may call and which every later action on that pool (unbond, withdraw,
/// roles, unjail, delegation, another slash) runs first. Until then no stake can enter or leave the pool, so
/// the amounts taken are exactly those the `Slashed` event announced.
///
/// Voting power equals bonded stake and belongs to each pool's operator (who may delegate it on, as in
/// ERC-5805): a slash then updates one checkpoint, and total voting power always equals total bonded.
/// @dev Jailing: a slash jails the operator for `jailDuration`; afterwards `unjail` restores it if its
/// self-bond still meets the minimum of every role it holds. A jailed pool accepts no new stake, and a pending
/// slash always belongs to a jailed pool (only `unjail` lifts a jail, and it applies the slash first).
contract NodeStaking is INodeStaking, AccessControl, Votes, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using Checkpoints for Checkpoints.Trace208;

    /// @notice May slash operators (granted to the settlement contract).
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");

    uint256 public constant BPS = 10_000;
    uint256 public constant MIN_UNBONDING_DELAY = 1 days;
    uint256 public constant MAX_UNBONDING_DELAY = 28 days;
    /// @notice One slash takes at most half of a pool, so a pool's stake never reaches zero by slashing.
    uint256 public constant MAX_SLASH_BPS = 5_000;
    uint256 public constant MAX_REPORTER_REWARD_BPS = 5_000;
    uint256 public constant MAX_COMMISSION_BPS = 5_000;
    /// @notice Largest commission increase in one change, and the least time between two changes.
    uint256 public constant MAX_COMMISSION_INCREASE_BPS = 500;
    uint256 public constant COMMISSION_CHANGE_INTERVAL = 1 days;
    uint256 public constant MAX_JAIL_DURATION = 28 days;
    uint256 public constant MAX_MINIMUM_STAKE = 10_000_000 ether;
    uint8 public constant ALL_ROLES = 7;

    /// @dev Rewards per share are kept to 36 decimals, so a pool loses less than 1 wei to rounding however
    /// many shares it has; each position loses less than 1 wei per reward it shares in or change of its shares,
    /// and rounding never owes a position more than it earned.
    uint256 private constant REWARD_PRECISION = 1e36;

    IERC20 public immutable token;

    // One slot: a slash reads the jail duration and the reporter's share together.
    address public treasury;
    uint32 private _unbondingDelay;
    uint16 public reporterRewardBps;
    uint32 public jailDuration;
    mapping(Role role => uint256) public minimumStake;

    /// @inheritdoc INodeStaking
    uint256 public totalUnbonding;
    /// @inheritdoc INodeStaking
    uint256 public rewardReserve;
    mapping(bytes32 evidenceId => bool) public evidenceUsed;

    struct Position {
        uint128 shares;
        uint64 unbondings;
        uint256 rewardDebt;
        uint256 pendingReward;
    }

    /// @dev An unbonding entry in one slot: its owner, operator and number are in its id (see `_unbondingId`).
    struct UnbondingEntry {
        uint48 maturity;
        uint208 shares;
    }

    mapping(address operator => Pool) private _pools;
    mapping(address operator => mapping(address account => Position)) private _positions;
    mapping(uint256 id => UnbondingEntry) private _unbondings;
    /// @dev Operators in registration order; an unbonding id names its operator by its place here.
    address[] private _operators;
    /// @dev Per operator, the mask of roles it was active in from each timestamp on (see `wasActiveOperator`).
    mapping(address operator => Checkpoints.Trace208) private _activity;
    /// @dev The latest checkpoint of `_activity`, packed as `since << 208 | mask`, so the usual question (about a
    /// time after the operator's last change) costs one storage read.
    mapping(address operator => uint256) private _latestActivity;
    mapping(address operator => PendingSlash) private _pendingSlashes;

    error NodeStakingZeroAmount();
    error NodeStakingZeroAddress();
    error NodeStakingInvalidRoles(uint8 roles);
    error NodeStakingAlreadyRegistered(address operator);
    error NodeStakingNotOperator(address account);
    error NodeStakingOperatorJailed(address operator);
    error NodeStakingNotJailed(address operator);
    error NodeStakingJailNotOver(address operator, uint48 until);
    error NodeStakingSelfBondBelowMinimum(address operator, uint256 selfBond, uint256 required);
    error NodeStakingCommissionTooHigh(uint256 commissionBps, uint256 maximum);
    error NodeStakingCommissionIncreaseTooLarge(uint256 currentBps, uint256 requestedBps);
    error NodeStakingCommissionChangeTooSoon(uint256 allowedAt);
    error NodeStakingZeroShares();
    error NodeStakingInsufficientShares(uint256 available, uint256 requested);
    error NodeStakingUnknownUnbonding(uint256 id);
    error NodeStakingNotMatured(uint256 id, uint48 maturity);
    error NodeStakingSlashFractionOutOfBounds(uint256 fractionBps);
    error NodeStakingZeroEvidence();
    error NodeStakingEvidenceAlreadyUsed(bytes32 evidenceId);
    error NodeStakingUnbondingDelayOutOfBounds(uint256 delay);
    error NodeStakingReporterRewardOutOfBounds(uint256 rewardBps);
    error NodeStakingJailDurationOutOfBounds(uint256 duration);
    error NodeStakingMinimumStakeOutOfBounds(uint256 amount);
    error NodeStakingNothingToClaim();
    error NodeStakingNoPendingSlash(address operator);

    /// @param token_ The OPG token.
    /// @param admin Holds the admin role (governance: the timelock in production).
    /// @param treasury_ Receives slashed stake (less the reporter's reward) and rewards no one can earn.
    /// @param minimumStakes Minimum self-bond per role, indexed by `Role`.
    /// @param unbondingDelay_ Seconds from unbonding to withdrawal, within 1–28 days (7 days by default).
    /// @param reporterRewardBps_ Share of a slash paid to the reporter, at most 50%.
    /// @param jailDuration_ Seconds a slashed operator stays jailed, at most 28 days.
    constructor(
        IERC20 token_,
        address admin,
        address treasury_,
        uint256[3] memory minimumStakes,
        uint256 unbondingDelay_,
        uint256 reporterRewardBps_,
        uint256 jailDuration_
    ) EIP712("OPG NodeStaking", "1") {
        if (address(token_) == address(0) || admin == address(0)) revert NodeStakingZeroAddress();
        token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setTreasury(treasury_);
        for (uint256 i = 0; i < minimumStakes.length; ++i) {
            _setMinimumStake(Role(i), minimumStakes[i]);
        }
        _setUnbondingDelay(unbondingDelay_);
        _setReporterReward(reporterRewardBps_);
        _setJailDuration(jailDuration_);
    }

    // ---------------------------------------------------------------- operators

    /// @inheritdoc INodeStaking
    function registerOperator(uint8 roles, uint256 bondAmount, uint16 commissionBps) external nonReentrant {
        Pool storage p = _pools[msg.sender];
        if (p.registered) revert NodeStakingAlreadyRegistered(msg.sender);
        _checkRoles(roles);
        if (commissionBps > MAX_COMMISSION_BPS) revert NodeStakingCommissionTooHigh(commissionBps, MAX_COMMISSION_BPS);

        p.registered = true;
        p.index = SafeCast.toUint32(_operators.length);
        _operators.push(msg.sender);
        p.roles = roles;
        p.commissionBps = commissionBps;
        p.lastCommissionChange = Time.timestamp();
        // Written now, at the operator's cost, so that a slash rewrites a non-zero slot rather than filling a new one.
        _pendingSlashes[msg.sender].initialized = true;
        if (delegates(msg.sender) == address(0)) _delegate(msg.sender, msg.sender);
        emit OperatorRegistered(msg.sender, roles, commissionBps);

        _stake(msg.sender, bondAmount);
        _requireSelfBondCovers(msg.sender, roles);
        _recordActivity(msg.sender);
    }

    /// @inheritdoc INodeStaking
    function setRoles(uint8 roles) external nonReentrant {
        _requireOperator(msg.sender);
        _checkRoles(roles);
        _applySlash(msg.sender);
        _requireSelfBondCovers(msg.sender, roles);
        _pools[msg.sender].roles = roles;
        emit OperatorRolesChanged(msg.sender, roles);
        _recordActivity(msg.sender);
    }

    /// @inheritdoc INodeStaking
    function setCommission(uint16 commissionBps) external {
        _requireOperator(msg.sender);
        Pool storage p = _pools[msg.sender];
        uint16 current = p.commissionBps;
        if (commissionBps > MAX_COMMISSION_BPS) revert NodeStakingCommissionTooHigh(commissionBps, MAX_COMMISSION_BPS);
        if (commissionBps > current) {
            if (commissionBps - current > MAX_COMMISSION_INCREASE_BPS) {
                revert NodeStakingCommissionIncreaseTooLarge(current, commissionBps);
            }
            uint256 allowedAt = p.lastCommissionChange + COMMISSION_CHANGE_INTERVAL;
            if (block.timestamp < allowedAt) revert NodeStakingCommissionChangeTooSoon(allowedAt);
        }
        p.commissionBps = commissionBps;
        p.lastCommissionChange = Time.timestamp();
        emit CommissionChanged(msg.sender, current, commissionBps);
    }

    /// @inheritdoc INodeStaking
    function unjail() external nonReentrant {
        Pool storage p = _pools[msg.sender];
        if (!p.jailed) revert NodeStakingNotJailed(msg.sender);
        if (block.timestamp < p.jailedUntil) revert NodeStakingJailNotOver(msg.sender, p.jailedUntil);
        _applySlash(msg.sender);
        _requireSelfBondCovers(msg.sender, p.roles);
        p.jailed = false;
        emit Unjailed(msg.sender);
        _recordActivity(msg.sender);
    }

    /// @inheritdoc INodeStaking
    function refreshActivity(address operator) external nonReentrant {
        _requireOperator(operator);
        _applySlash(operator);
        _recordActivity(operator);
    }

    // ---------------------------------------------------------------- staking

    /// @inheritdoc INodeStaking
    function stake(address operator, uint256 amount) external nonReentrant returns (uint256 shares) {
        _requireOperator(operator);
        shares = _stake(operator, amount);
        if (msg.sender == operator) _recordActivity(operator);
    }

    /// @inheritdoc INodeStaking
    function unbond(address operator, uint256 shares) external nonReentrant returns (uint256 id) {
        if (shares == 0) revert NodeStakingZeroAmount();
        Pool storage p = _pools[operator];
        Position storage position = _positions[operator][msg.sender];
        if (position.shares < shares) revert NodeStakingInsufficientShares(position.shares, shares);
        if (p.jailed) _applySlash(operator); // only a jailed pool can have a pending slash

        uint256 amount = Math.mulDiv(shares, p.totalStake, p.totalShares);
        _settleRewards(p, position);
        position.shares -= uint128(shares); // at most the position's shares, checked above
        position.rewardDebt = _debt(p, position.shares);
        p.totalShares -= shares;
        p.totalStake -= amount;
        _transferVotingUnits(operator, address(0), amount);

        uint256 unbondingShares = p.unbondingShares == 0
            ? amount
            : Math.mulDiv(amount, p.unbondingShares, p.unbondingStake);
        if (unbondingShares == 0) revert NodeStakingZeroShares();
        p.unbondingShares += unbondingShares;
        p.unbondingStake += amount;
        totalUnbonding += amount;

        id = _unbondingId(msg.sender, p.index, ++position.unbondings);
        uint48 maturity = SafeCast.toUint48(block.timestamp + _unbondingDelay);
        _unbondings[id] = UnbondingEntry({maturity: maturity, shares: uint208(unbondingShares)});
        emit UnbondingStarted(id, operator, msg.sender, amount, unbondingShares, maturity);
        if (msg.sender == operator) _recordActivity(operator);
    }

    /// @inheritdoc INodeStaking
    function withdraw(uint256 id) external nonReentrant returns (uint256 amount) {
        Unbonding memory entry = unbonding(id);
        if (entry.owner == address(0)) revert NodeStakingUnknownUnbonding(id);
        if (block.timestamp < entry.maturity) revert NodeStakingNotMatured(id, entry.maturity);

        _applySlash(entry.operator);
        Pool storage p = _pools[entry.operator];
        amount = Math.mulDiv(entry.shares, p.unbondingStake, p.unbondingShares);
        p.unbondingShares -= entry.shares;
        p.unbondingStake -= amount;
        totalUnbonding -= amount;
        delete _unbondings[id];

        token.safeTransfer(entry.owner, amount);
        emit Withdrawn(id, entry.owner, amount);
    }

    // ---------------------------------------------------------------- slashing

    /// @inheritdoc INodeStaking
    function slash(address operator, uint256 fractionBps, bytes32 evidenceId, address reporter)
        external
        nonReentrant
        onlyRole(SLASHER_ROLE)
    {
        _requireOperator(operator);
        if (fractionBps == 0 || fractionBps > MAX_SLASH_BPS) revert NodeStakingSlashFractionOutOfBounds(fractionBps);
        if (evidenceId == bytes32(0)) revert NodeStakingZeroEvidence();
        if (evidenceUsed[evidenceId]) revert NodeStakingEvidenceAlreadyUsed(evidenceId);
        evidenceUsed[evidenceId] = true;

        // A slash still pending is taken first, at its own amounts (checked here: the common case costs no call).
        if (_pendingSlashes[operator].fractionBps != 0) _applySlash(operator);
        _jail(operator);
        _recordSlash(operator, fractionBps, evidenceId, reporter);
    }

    /// @inheritdoc INodeStaking
    function applySlash(address operator) external nonReentrant {
        if (_pendingSlashes[operator].fractionBps == 0) revert NodeStakingNoPendingSlash(operator);
        _applySlash(operator);
    }

    // ---------------------------------------------------------------- rewards

    /// @inheritdoc INodeStaking
    function notifyReward(address operator, uint256 amount) external nonReentrant {
        _requireOperator(operator);
        if (amount == 0) revert NodeStakingZeroAmount();
        token.safeTransferFrom(msg.sender, address(this), amount);

        Pool storage p = _pools[operator];
        if (p.totalShares == 0) {
            emit RewardNotified(operator, msg.sender, amount, 0);
            emit RewardToTreasury(operator, amount);
            token.safeTransfer(treasury, amount);
            return;
        }
        uint256 commission = amount * p.commissionBps / BPS;
        _positions[operator][operator].pendingReward += commission;
        p.rewardPerShare += Math.mulDiv(amount - commission, REWARD_PRECISION, p.totalShares);
        rewardReserve += amount;
        emit RewardNotified(operator, msg.sender, amount, commission);
    }

    /// @inheritdoc INodeStaking
    function claimRewards(address operator) external nonReentrant returns (uint256 amount) {
        Pool storage p = _pools[operator];
        Position storage position = _positions[operator][msg.sender];
        _settleRewards(p, position);
        amount = position.pendingReward;
        if (amount == 0) revert NodeStakingNothingToClaim();
        position.pendingReward = 0;
        rewardReserve -= amount;
        token.safeTransfer(msg.sender, amount);
        emit RewardClaimed(operator, msg.sender, amount);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Set the unbonding delay, within 1–28 days. Entries already unbonding keep their maturity.
    function setUnbondingDelay(uint256 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setUnbondingDelay(delay);
    }

    /// @notice Set the minimum self-bond for `role`, between 1 wei and 10,000,000 OPG.
    function setMinimumStake(Role role, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMinimumStake(role, amount);
    }

    /// @notice Set the reporter's share of a slash, at most 50%.
    function setReporterReward(uint256 rewardBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setReporterReward(rewardBps);
    }

    /// @notice Set how long a slashed operator stays jailed, at most 28 days.
    function setJailDuration(uint256 duration) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setJailDuration(duration);
    }

    /// @notice Set the treasury address.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc INodeStaking
    function totalBonded() external view returns (uint256) {
        return _getTotalSupply();
    }

    /// @inheritdoc INodeStaking
    function unbondingDelay() external view returns (uint256) {
        return _unbondingDelay;
    }

    /// @inheritdoc INodeStaking
    function isActiveOperator(address operator, Role role) external view returns (bool) {
        Pool storage p = _pools[operator];
        return p.registered && !p.jailed && (p.roles & _roleBit(role)) != 0
            && selfBond(operator) >= minimumStake[role];
    }

    /// @inheritdoc INodeStaking
    function wasActiveOperator(address operator, Role role, uint256 timestamp) external view returns (bool) {
        if (timestamp > block.timestamp) return false;
        uint256 latest = _latestActivity[operator];
        uint256 mask = latest >> 208 <= timestamp
            ? uint208(latest)
            : _activity[operator].upperLookupRecent(SafeCast.toUint48(timestamp));
        return mask & _roleBit(role) != 0;
    }

    /// @inheritdoc INodeStaking
    function pool(address operator) external view returns (Pool memory) {
        return _pools[operator];
    }

    /// @inheritdoc INodeStaking
    function unbonding(uint256 id) public view returns (Unbonding memory entry) {
        UnbondingEntry memory stored = _unbondings[id];
        if (stored.shares == 0) return entry;
        entry = Unbonding({
            owner: address(uint160(id >> 96)),
            maturity: stored.maturity,
            operator: _operators[uint32(id >> 64)],
            shares: stored.shares
        });
    }

    /// @inheritdoc INodeStaking
    function sharesOf(address operator, address account) external view returns (uint256) {
        return _positions[operator][account].shares;
    }

    /// @inheritdoc INodeStaking
    function stakeOf(address operator, address account) public view returns (uint256) {
        Pool storage p = _pools[operator];
        uint256 shares = _positions[operator][account].shares;
        if (shares == 0) return 0;
        uint256 bonded = p.totalStake;
        return Math.mulDiv(shares, bonded - _cut(bonded, _pendingSlashes[operator].fractionBps), p.totalShares);
    }

    /// @inheritdoc INodeStaking
    function selfBond(address operator) public view returns (uint256) {
        return stakeOf(operator, operator);
    }

    /// @inheritdoc INodeStaking
    function unbondingValue(uint256 id) external view returns (uint256) {
        Unbonding memory entry = unbonding(id);
        if (entry.owner == address(0)) return 0;
        Pool storage p = _pools[entry.operator];
        uint256 unbondingStake = p.unbondingStake;
        uint256 afterSlash = unbondingStake - _cut(unbondingStake, _pendingSlashes[entry.operator].fractionBps);
        return Math.mulDiv(entry.shares, afterSlash, p.unbondingShares);
    }

    /// @inheritdoc INodeStaking
    function pendingSlash(address operator) external view returns (PendingSlash memory) {
        return _pendingSlashes[operator];
    }

    /// @inheritdoc INodeStaking
    function claimableRewards(address operator, address account) external view returns (uint256) {
        Position storage position = _positions[operator][account];
        return position.pendingReward + _unsettled(_pools[operator], position);
    }

    /// @notice The current timestamp: votes use a timestamp clock (ERC-6372).
    function clock() public view override(IERC6372, Votes) returns (uint48) {
        return Time.timestamp();
    }

    /// @notice Declares the timestamp clock (ERC-6372).
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override(IERC6372, Votes) returns (string memory) {
        return "mode=timestamp";
    }

    // ---------------------------------------------------------------- internals

    /// @dev Bonds `amount` of the caller's OPG into `operator`'s pool.
    function _stake(address operator, uint256 amount) private returns (uint256 shares) {
        if (amount == 0) revert NodeStakingZeroAmount();
        Pool storage p = _pools[operator];
        if (p.jailed) {
            // Only the operator itself, to cover its roles' minimums again before `unjail`; its pending slash
            // is taken first, so the new stake is not slashed for what happened before it.
            if (msg.sender != operator) revert NodeStakingOperatorJailed(operator);
            _applySlash(operator);
        }

        shares = p.totalShares == 0 ? amount : Math.mulDiv(amount, p.totalShares, p.totalStake);
        if (shares == 0) revert NodeStakingZeroShares();
        Position storage position = _positions[operator][msg.sender];
        _settleRewards(p, position);
        position.shares += SafeCast.toUint128(shares);
        position.rewardDebt = _debt(p, position.shares);
        p.totalShares += shares;
        p.totalStake += amount;
        _transferVotingUnits(address(0), operator, amount);

        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Staked(operator, msg.sender, amount, shares);
    }

    /// @dev Checkpoint the roles `operator` is active in now. Called after every change of its own state
    /// (registration, roles, self-bond, slash, jail, unjail) and by `refreshActivity`, which anyone calls to
    /// bring a changed minimum stake into an operator's history.
    function _recordActivity(address operator) private {
        Pool storage p = _pools[operator];
        uint256 mask = 0;
        if (p.registered && !p.jailed) {
            uint256 bond = selfBond(operator);
            for (uint8 i = 0; i < 3; ++i) {
                uint8 bit = _roleBit(Role(i));
                if (p.roles & bit != 0 && bond >= minimumStake[Role(i)]) mask |= bit;
            }
        }
        uint256 latest = _latestActivity[operator];
        // Nothing to record when the roles it is active in did not change (most stake and unbond calls).
        if (latest != 0 && uint208(latest) == mask) return;
        uint48 since = Time.timestamp();
        _activity[operator].push(since, uint208(mask));
        _latestActivity[operator] = uint256(since) << 208 | mask;
    }

    /// @dev The id of `owner`'s `number`-th unbonding from the pool at `operatorIndex`: owner, operator and number
    /// packed, so the entry itself is one slot.
    function _unbondingId(address owner, uint32 operatorIndex, uint64 number) private pure returns (uint256) {
        return uint256(uint160(owner)) << 96 | uint256(operatorIndex) << 64 | number;
    }

    /// @dev Jail `operator` from now; its activity ends now (the history's checkpoint is pushed when the slash
    /// is applied, see `_recordSlash`).
    function _jail(address operator) private {
        Pool storage p = _pools[operator];
        // At least one second, so the jail's activity checkpoint cannot be overwritten by an unjail in the same
        // second; and a later slash never shortens a jail already served (governance may have cut the duration).
        uint48 until = SafeCast.toUint48(block.timestamp + Math.max(jailDuration, 1));
        if (p.jailed && p.jailedUntil > until) until = p.jailedUntil;
        p.jailed = true;
        p.jailedUntil = until;
        emit Jailed(operator, until);
    }

    function _recordSlash(address operator, uint256 fractionBps, bytes32 evidenceId, address reporter) private {
        uint48 now_ = Time.timestamp();
        uint256 latest = _latestActivity[operator];
        bool activityDeferred = uint208(latest) != 0;
        if (activityDeferred) _latestActivity[operator] = uint256(now_) << 208;

        uint16 rewardBps = reporter == address(0) ? 0 : reporterRewardBps;
        _pendingSlashes[operator] = PendingSlash({
            reporter: reporter,
            fractionBps: SafeCast.toUint16(fractionBps),
            reporterRewardBps: rewardBps,
            slashedAt: now_,
            activityDeferred: activityDeferred,
            initialized: true
        });
        (uint256 fromBonded, uint256 fromUnbonding, uint256 reporterReward) =
            _slashAmounts(_pools[operator], fractionBps, rewardBps);
        emit Slashed(operator, evidenceId, reporter, fractionBps, fromBonded, fromUnbonding, reporterReward);
    }

    /// @dev Take `operator`'s pending slash, if any, from its pool: bonded and unbonding stake, totals, votes,
    /// the activity checkpoint of the jail, and the payments to the reporter and the treasury.
    function _applySlash(address operator) private {
        PendingSlash storage pending = _pendingSlashes[operator];
        uint256 fractionBps = pending.fractionBps;
        if (fractionBps == 0) return;
        (address reporter, uint16 rewardBps, uint48 slashedAt, bool activityDeferred) =
            (pending.reporter, pending.reporterRewardBps, pending.slashedAt, pending.activityDeferred);
        pending.fractionBps = 0;
        pending.activityDeferred = false;

        Pool storage p = _pools[operator];
        (uint256 fromBonded, uint256 fromUnbonding, uint256 reporterReward) = _slashAmounts(p, fractionBps, rewardBps);
        p.totalStake -= fromBonded;
        p.unbondingStake -= fromUnbonding;
        totalUnbonding -= fromUnbonding;
        _transferVotingUnits(operator, address(0), fromBonded);
        if (activityDeferred) _activity[operator].push(slashedAt, 0);
        emit SlashApplied(operator, fromBonded, fromUnbonding, reporterReward);

        uint256 slashed = fromBonded + fromUnbonding;
        if (reporterReward > 0) token.safeTransfer(reporter, reporterReward);
        if (slashed > reporterReward) token.safeTransfer(treasury, slashed - reporterReward);
    }

    function _slashAmounts(Pool storage p, uint256 fractionBps, uint256 rewardBps)
        private
        view
        returns (uint256 fromBonded, uint256 fromUnbonding, uint256 reporterReward)
    {
        fromBonded = _cut(p.totalStake, fractionBps);
        fromUnbonding = _cut(p.unbondingStake, fractionBps);
        reporterReward = _cut(fromBonded + fromUnbonding, rewardBps);
    }

    /// @dev `fractionBps` of `amount`, rounded down: what a slash takes, so the views (`stakeOf`,
    /// `unbondingValue`) show exactly what applying a pending slash will leave.
    function _cut(uint256 amount, uint256 fractionBps) private pure returns (uint256) {
        return amount * fractionBps / BPS;
    }

    /// @dev Moving an operator's votes moves its pool's bonded stake, so a pending slash is applied first.
    function _delegate(address account, address delegatee) internal override {
        _applySlash(account);
        super._delegate(account, delegatee);
    }

    function _settleRewards(Pool storage p, Position storage position) private {
        position.pendingReward += _unsettled(p, position);
        position.rewardDebt = _debt(p, position.shares);
    }

    /// @dev Rewards accrued since the position's debt was set: rounded down, with the debt rounded up, so that no
    /// position is ever owed more than the pool received (each reset of the debt costs it less than 1 wei).
    function _unsettled(Pool storage p, Position storage position) private view returns (uint256) {
        uint256 accrued = Math.mulDiv(position.shares, p.rewardPerShare, REWARD_PRECISION);
        uint256 debt = position.rewardDebt;
        return accrued > debt ? accrued - debt : 0;
    }

    function _debt(Pool storage p, uint256 shares) private view returns (uint256) {
        return Math.mulDiv(shares, p.rewardPerShare, REWARD_PRECISION, Math.Rounding.Ceil);
    }

    function _requireOperator(address operator) private view {
        if (!_pools[operator].registered) revert NodeStakingNotOperator(operator);
    }

    function _requireSelfBondCovers(address operator, uint8 roles) private view {
        uint256 bond = selfBond(operator);
        for (uint8 i = 0; i < 3; ++i) {
            Role role = Role(i);
            if (roles & _roleBit(role) != 0 && bond < minimumStake[role]) {
                revert NodeStakingSelfBondBelowMinimum(operator, bond, minimumStake[role]);
            }
        }
    }

    function _checkRoles(uint8 roles) private pure {
        if (roles == 0 || roles & ~ALL_ROLES != 0) revert NodeStakingInvalidRoles(roles);
    }

    function _roleBit(Role role) private pure returns (uint8) {
        return uint8(1 << uint8(role));
    }

    /// @dev Voting units of an operator are its pool's bonded stake.
    function _getVotingUnits(address account) internal view override returns (uint256) {
        return _pools[account].totalStake;
    }

    function _setUnbondingDelay(uint256 delay) private {
        if (delay < MIN_UNBONDING_DELAY || delay > MAX_UNBONDING_DELAY) revert NodeStakingUnbondingDelayOutOfBounds(delay);
        emit UnbondingDelaySet(_unbondingDelay, delay);
        _unbondingDelay = uint32(delay);
    }

    function _setMinimumStake(Role role, uint256 amount) private {
        if (amount == 0 || amount > MAX_MINIMUM_STAKE) revert NodeStakingMinimumStakeOutOfBounds(amount);
        emit MinimumStakeSet(role, minimumStake[role], amount);
        minimumStake[role] = amount;
    }

    function _setReporterReward(uint256 rewardBps) private {
        if (rewardBps > MAX_REPORTER_REWARD_BPS) revert NodeStakingReporterRewardOutOfBounds(rewardBps);
        emit ReporterRewardSet(reporterRewardBps, rewardBps);
        reporterRewardBps = uint16(rewardBps);
    }

    function _setJailDuration(uint256 duration) private {
        if (duration > MAX_JAIL_DURATION) revert NodeStakingJailDurationOutOfBounds(duration);
        emit JailDurationSet(jailDuration, duration);
        jailDuration = uint32(duration);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert NodeStakingZeroAddress();
        emit TreasurySet(treasury, treasury_);
        treasury = treasury_;
    }
}
