// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC5805} from "@openzeppelin/contracts/interfaces/IERC5805.sol";

/// @title Node staking interface
/// @notice Operators bond OPG for protocol roles; holders delegate OPG to operators' pools; stake can be
/// slashed for proven misbehaviour; fee income is shared among a pool's stakers. Voting power (ERC-5805,
/// timestamp clock) equals bonded stake and sits with each pool's operator.
interface INodeStaking is IERC5805 {
    /// @notice Protocol roles an operator can bond for. A role mask has bit `1 << uint8(role)` set per role.
    enum Role {
        InferenceNode,
        TeeNode,
        SettlementRelayer
    }

    /// @notice An operator's pool: bonded and unbonding stake, their shares, and rewards per share; `index` is its
    /// place in registration order (meaningful only when `registered`), used in unbonding ids.
    struct Pool {
        bool registered;
        bool jailed;
        uint8 roles;
        uint16 commissionBps;
        uint48 lastCommissionChange;
        uint48 jailedUntil;
        uint32 index;
        uint256 totalStake;
        uint256 totalShares;
        uint256 unbondingStake;
        uint256 unbondingShares;
        uint256 rewardPerShare;
    }

    /// @notice An unbonding claim: shares of its operator's unbonding pool, withdrawable from `maturity`. Its id
    /// packs its owner (top 160 bits), its operator's registration index (`Pool.index`, 32 bits) and the
    /// owner's count of unbondings from that pool (64 bits).
    struct Unbonding {
        address owner;
        uint48 maturity;
        address operator;
        uint256 shares;
    }

    /// @notice A slash recorded and not yet applied to its pool (see `applySlash`). `initialized` keeps the slot
    /// non-zero from registration on, so recording a slash rewrites it instead of filling a new slot.
    struct PendingSlash {
        address reporter;
        uint16 fractionBps;
        uint16 reporterRewardBps;
        uint48 slashedAt;
        bool activityDeferred;
        bool initialized;
    }

    event OperatorRegistered(address indexed operator, uint8 roles, uint16 commissionBps);
    event OperatorRolesChanged(address indexed operator, uint8 roles);
    event CommissionChanged(address indexed operator, uint16 previousBps, uint16 newBps);
    event Staked(address indexed operator, address indexed staker, uint256 amount, uint256 shares);
    event UnbondingStarted(
        uint256 indexed id, address indexed operator, address indexed owner, uint256 amount, uint256 shares, uint48 maturity
    );
    event Withdrawn(uint256 indexed id, address indexed owner, uint256 amount);
    event Slashed(
        address indexed operator,
        bytes32 indexed evidenceId,
        address indexed reporter,
        uint256 fractionBps,
        uint256 fromBonded,
        uint256 fromUnbonding,
        uint256 reporterReward
    );
    /// @notice A slash recorded by `slash` was applied: the amounts announced by its `Slashed` event left the pool.
    event SlashApplied(address indexed operator, uint256 fromBonded, uint256 fromUnbonding, uint256 reporterReward);
    event Jailed(address indexed operator, uint48 until);
    event Unjailed(address indexed operator);
    event RewardNotified(address indexed operator, address indexed from, uint256 amount, uint256 commission);
    event RewardToTreasury(address indexed operator, uint256 amount);
    event RewardClaimed(address indexed operator, address indexed account, uint256 amount);
    event UnbondingDelaySet(uint256 previous, uint256 current);
    event MinimumStakeSet(Role indexed role, uint256 previous, uint256 current);
    event ReporterRewardSet(uint256 previousBps, uint256 currentBps);
    event JailDurationSet(uint256 previous, uint256 current);
    event TreasurySet(address indexed previous, address indexed current);

    /// @notice Register the caller as an operator for `roles`, bonding `bondAmount` OPG (pulled from the caller).
    function registerOperator(uint8 roles, uint256 bondAmount, uint16 commissionBps) external;

    /// @notice Change the roles the caller bonds for.
    function setRoles(uint8 roles) external;

    /// @notice Change the caller's commission. Decreases apply at once; increases are rate-limited.
    function setCommission(uint16 commissionBps) external;

    /// @notice Bond `amount` OPG (pulled from the caller) into `operator`'s pool. A jailed pool takes stake only
    /// from its operator (to cover its roles' minimums before `unjail`).
    function stake(address operator, uint256 amount) external returns (uint256 shares);

    /// @notice Start unbonding `shares` of the caller's position in `operator`'s pool.
    function unbond(address operator, uint256 shares) external returns (uint256 id);

    /// @notice Pay out matured unbonding entry `id` to its owner.
    function withdraw(uint256 id) external returns (uint256 amount);

    /// @notice Slash `operator`'s bonded and unbonding stake by `fractionBps` for evidence `evidenceId` (single
    /// use) and jail it. The slash is recorded and announced at once (`Slashed` carries the exact amounts) and
    /// applied to the pool by `applySlash` or the pool's next unbond, withdrawal, role change, unjail or delegation.
    function slash(address operator, uint256 fractionBps, bytes32 evidenceId, address reporter) external;

    /// @notice Apply `operator`'s pending slash: its stake leaves the pool, the votes and totals follow, the
    /// reporter and the treasury are paid. Anyone may call it.
    function applySlash(address operator) external;

    /// @notice `operator`'s pending slash (`fractionBps` is zero when there is none).
    function pendingSlash(address operator) external view returns (PendingSlash memory);

    /// @notice End the caller's jail once its term is over and its self-bond meets its roles' minimums.
    function unjail() external;

    /// @notice Pay `amount` OPG (pulled from the caller) as rewards to `operator`'s pool.
    function notifyReward(address operator, uint256 amount) external;

    /// @notice Pay the caller its rewards from `operator`'s pool.
    function claimRewards(address operator) external returns (uint256 amount);

    /// @notice Seconds between unbonding and withdrawal; stake stays slashable for at least this long.
    function unbondingDelay() external view returns (uint256);

    /// @notice True when `operator` bonds for `role`, is not jailed and its self-bond meets the role's minimum.
    function isActiveOperator(address operator, Role role) external view returns (bool);

    /// @notice True when `operator` was active for `role` at `timestamp` (not in the future), as recorded at its
    /// last change of state at or before then. Settlement judges signers by this, so that nothing an operator
    /// does later (unbonding, changing roles, being jailed) rewrites what it signed while active.
    function wasActiveOperator(address operator, Role role, uint256 timestamp) external view returns (bool);

    /// @notice Write `operator`'s current activity into its history (anyone may call). Governance raising a
    /// role's minimum stake changes `isActiveOperator` at once; this makes the history follow from now on,
    /// without rewriting any earlier time.
    function refreshActivity(address operator) external;

    /// @notice The pool of `operator`.
    function pool(address operator) external view returns (Pool memory);

    /// @notice An unbonding entry.
    function unbonding(uint256 id) external view returns (Unbonding memory);

    /// @notice Shares `account` holds in `operator`'s pool.
    function sharesOf(address operator, address account) external view returns (uint256);

    /// @notice The OPG value of `account`'s shares in `operator`'s pool (after any pending slash).
    function stakeOf(address operator, address account) external view returns (uint256);

    /// @notice The OPG value of `operator`'s own shares in its pool.
    function selfBond(address operator) external view returns (uint256);

    /// @notice The OPG value of unbonding entry `id` now (after any pending slash).
    function unbondingValue(uint256 id) external view returns (uint256);

    /// @notice Rewards `account` can claim from `operator`'s pool.
    function claimableRewards(address operator, address account) external view returns (uint256);

    /// @notice Sum of bonded stake over all pools: the total voting power (pending slashes count once applied).
    function totalBonded() external view returns (uint256);

    /// @notice Sum of unbonding stake over all pools.
    function totalUnbonding() external view returns (uint256);

    /// @notice Rewards paid in and not yet claimed.
    function rewardReserve() external view returns (uint256);
}
