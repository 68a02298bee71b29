// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ITwinMarket} from "../interfaces/ITwinMarket.sol";

/// @title Twin market
/// @notice Shares of digital twins on the curve price(k) = (k−1)² · 1 ether / D for the k-th share. The
/// owner sets a protocol fee and a subject fee (1e18 = 100%), but:
/// - each fee is capped by an immutable cap fixed at deployment, and the caps add up to at most 50%;
/// - a decrease applies at once; an increase is announced (`FeeChangeScheduled`) and can be applied only
///   after `feeIncreaseDelay`, and cancelled before;
/// - every trade names the highest total fee it accepts, so a fee change can never hit a trade in flight;
/// - the protocol fee destination changes in two steps, after the same delay.
/// Fees and subject proceeds accrue to claimable balances (pull), so no receiver can block trading.
///
/// Exact prices: D must divide 1 ether (Twin.fun's 1,600,000 and friend.tech's 16,000 both do), so a
/// trade's price Σ(k−1)² · (1 ether / D) has no rounding at all, however trades are split. Selling `n`
/// shares pays exactly what buying those `n` shares cost, so the contract always holds what every holder
/// could get back, and a round trip never profits. Fees are floored. The last share of a twin can never be
/// sold.
contract TwinMarket is ITwinMarket, Ownable2Step, ReentrancyGuardTransient {
    uint256 public constant ONE = 1e18;
    uint256 public constant MAX_TOTAL_FEE_CAP = 0.5e18;
    uint256 public constant MIN_DELAY = 1 hours;
    uint256 public constant MAX_DELAY = 30 days;

    /// @notice The curve divisor D.
    uint256 public immutable curveDivisor;
    /// @notice 1 ether / D: the price of the second share.
    uint256 public immutable priceUnit;
    uint256 public immutable minSharesToCreate;
    uint256 public immutable protocolFeeCap;
    uint256 public immutable subjectFeeCap;
    uint256 public immutable feeIncreaseDelay;
    uint256 public immutable twinTransferDelay;

    /// @dev Fees in force and protocol fees accrued share one slot: a trade reads and writes it once.
    struct FeeState {
        uint64 protocolFeePercent;
        uint64 subjectFeePercent;
        uint128 protocolFeesAccrued;
    }

    /// @dev A twin's supply and its unclaimed subject fees share one slot.
    struct TwinState {
        uint128 supply;
        uint128 subjectFees;
    }

    struct PendingFees {
        uint64 protocolFeePercent;
        uint64 subjectFeePercent;
        uint64 eta;
    }

    struct PendingTransfer {
        address to;
        uint64 eta;
    }

    FeeState private _fees;
    PendingFees public pendingFees;
    address public feeDestination;
    address public pendingFeeDestination;
    uint256 public pendingFeeDestinationEta;
    address public claimManager;

    mapping(bytes16 id => TwinState) private _twins;
    mapping(bytes16 id => address) public twinOwner;
    mapping(bytes16 id => string) public twinUrl;
    mapping(bytes16 id => PendingTransfer) public pendingTwinTransfer;
    mapping(bytes16 id => mapping(address holder => uint256)) public sharesBalance;

    error TwinMarketZeroAddress();
    error TwinMarketInvalidParameter();
    error TwinMarketZeroId();
    error TwinMarketTwinExists(bytes16 id);
    error TwinMarketUnknownTwin(bytes16 id);
    error TwinMarketZeroAmount();
    error TwinMarketBelowMinimumCreation(uint256 amount, uint256 minimum);
    error TwinMarketExpired(uint256 deadline);
    error TwinMarketCostAboveMax(uint256 cost, uint256 maxCost);
    error TwinMarketPayoutBelowMin(uint256 payout, uint256 minPayout);
    error TwinMarketFeeAboveMax(uint256 feePercent, uint256 maxFeePercent);
    error TwinMarketInsufficientPayment(uint256 paid, uint256 cost);
    error TwinMarketInsufficientShares(uint256 balance, uint256 amount);
    error TwinMarketLastShare(bytes16 id);
    error TwinMarketFeeAboveCap(uint256 feePercent, uint256 cap);
    error TwinMarketNoPendingFeeChange();
    error TwinMarketTooEarly(uint256 eta);
    error TwinMarketNotFeeDestination(address account);
    error TwinMarketNotPendingFeeDestination(address account);
    error TwinMarketNotClaimManager(address account);
    error TwinMarketNotTwinOwner(bytes16 id, address account);
    error TwinMarketNoPendingTransfer(bytes16 id);
    error TwinMarketNotPendingTwinOwner(bytes16 id, address account);
    error TwinMarketNothingToClaim();

    /// @param owner_ Sets fees, the fee destination and the claim manager (two-step ownership).
    /// @param feeDestination_ Claims protocol fees.
    /// @param claimManager_ Starts twin ownership transfers (claims of a twin by its real-world subject).
    /// @param curveDivisor_ D in the curve, a divisor of 1 ether: 1,600,000 in Twin.fun's docs, 16,000 in friend.tech.
    /// @param minSharesToCreate_ Least first buy that creates a twin (at least 1).
    /// @param protocolFeeCap_ Immutable cap of the protocol fee (1e18 = 100%).
    /// @param subjectFeeCap_ Immutable cap of the subject fee; the two caps add up to at most 50%.
    /// @param protocolFeePercent Initial protocol fee, within its cap.
    /// @param subjectFeePercent Initial subject fee, within its cap.
    /// @param feeIncreaseDelay_ Wait between announcing and applying a fee increase or destination (1 h–30 d).
    /// @param twinTransferDelay_ Wait before a twin ownership transfer completes (1 h–30 d).
    constructor(
        address owner_,
        address feeDestination_,
        address claimManager_,
        uint256 curveDivisor_,
        uint256 minSharesToCreate_,
        uint256 protocolFeeCap_,
        uint256 subjectFeeCap_,
        uint256 protocolFeePercent,
        uint256 subjectFeePercent,
        uint256 feeIncreaseDelay_,
        uint256 twinTransferDelay_
    ) Ownable(owner_) {
        if (feeDestination_ == address(0) || claimManager_ == address(0)) revert TwinMarketZeroAddress();
        if (
            curveDivisor_ == 0 || 1 ether % curveDivisor_ != 0 || minSharesToCreate_ == 0 || protocolFeeCap_ + subjectFeeCap_ > MAX_TOTAL_FEE_CAP
                || !_validDelay(feeIncreaseDelay_) || !_validDelay(twinTransferDelay_)
        ) revert TwinMarketInvalidParameter();
        curveDivisor = curveDivisor_;
        priceUnit = 1 ether / curveDivisor_;
        minSharesToCreate = minSharesToCreate_;
        protocolFeeCap = protocolFeeCap_;
        subjectFeeCap = subjectFeeCap_;
        feeIncreaseDelay = feeIncreaseDelay_;
        twinTransferDelay = twinTransferDelay_;
        _checkCaps(protocolFeePercent, subjectFeePercent);
        _fees.protocolFeePercent = uint64(protocolFeePercent);
        _fees.subjectFeePercent = uint64(subjectFeePercent);
        emit FeesChanged(0, 0, protocolFeePercent, subjectFeePercent);
        feeDestination = feeDestination_;
        emit FeeDestinationChanged(address(0), feeDestination_);
        claimManager = claimManager_;
        emit ClaimManagerChanged(address(0), claimManager_);
    }

    // ---------------------------------------------------------------- trading

    /// @inheritdoc ITwinMarket
    function createTwin(
        bytes16 id,
        string calldata url,
        uint256 amount,
        uint256 maxCost,
        uint256 maxFeePercent,
        uint256 deadline
    ) external payable nonReentrant {
        if (id == bytes16(0)) revert TwinMarketZeroId();
        if (_twins[id].supply != 0) revert TwinMarketTwinExists(id);
        if (amount < minSharesToCreate) revert TwinMarketBelowMinimumCreation(amount, minSharesToCreate);
        twinOwner[id] = msg.sender;
        twinUrl[id] = url;
        emit TwinCreated(id, msg.sender, url);
        emit TwinOwnershipTransferred(id, address(0), msg.sender);
        _buy(id, amount, maxCost, maxFeePercent, deadline);
    }

    /// @inheritdoc ITwinMarket
    function buy(bytes16 id, uint256 amount, uint256 maxCost, uint256 maxFeePercent, uint256 deadline)
        external
        payable
        nonReentrant
    {
        if (_twins[id].supply == 0) revert TwinMarketUnknownTwin(id);
        _buy(id, amount, maxCost, maxFeePercent, deadline);
    }

    /// @inheritdoc ITwinMarket
    function sell(bytes16 id, uint256 amount, uint256 minPayout, uint256 maxFeePercent, uint256 deadline)
        external
        nonReentrant
    {
        if (amount == 0) revert TwinMarketZeroAmount();
        if (block.timestamp > deadline) revert TwinMarketExpired(deadline);
        TwinState memory twin = _twins[id];
        if (twin.supply == 0) revert TwinMarketUnknownTwin(id);
        if (amount >= twin.supply) revert TwinMarketLastShare(id);
        uint256 balance = sharesBalance[id][msg.sender];
        if (balance < amount) revert TwinMarketInsufficientShares(balance, amount);

        uint256 supplyAfter = twin.supply - amount;
        uint256 price = getPrice(supplyAfter, amount);
        (uint256 protocolFee, uint256 subjectFee) = _chargeFees(price, maxFeePercent);
        uint256 payout = price - protocolFee - subjectFee;
        if (payout < minPayout) revert TwinMarketPayoutBelowMin(payout, minPayout);

        sharesBalance[id][msg.sender] = balance - amount;
        _twins[id] = TwinState({
            supply: uint128(supplyAfter),
            subjectFees: twin.subjectFees + SafeCast.toUint128(subjectFee)
        });
        emit Trade(msg.sender, id, false, amount, price, protocolFee, subjectFee, supplyAfter);
        Address.sendValue(payable(msg.sender), payout);
    }

    // ---------------------------------------------------------------- claims

    /// @notice Pay the accrued protocol fees to the fee destination (callable by it only).
    function claimProtocolFees() external nonReentrant {
        if (msg.sender != feeDestination) revert TwinMarketNotFeeDestination(msg.sender);
        uint256 amount = _fees.protocolFeesAccrued;
        if (amount == 0) revert TwinMarketNothingToClaim();
        _fees.protocolFeesAccrued = 0;
        emit ProtocolFeesClaimed(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Pay twin `id`'s accrued subject fees to its owner (callable by the owner only).
    function claimSubjectFees(bytes16 id) external nonReentrant {
        if (twinOwner[id] != msg.sender) revert TwinMarketNotTwinOwner(id, msg.sender);
        uint256 amount = _twins[id].subjectFees;
        if (amount == 0) revert TwinMarketNothingToClaim();
        _twins[id].subjectFees = 0;
        emit SubjectFeesClaimed(id, msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    // ---------------------------------------------------------------- fees (owner)

    /// @notice Change the fees. Lower or equal fees apply at once; any increase is scheduled and applies
    /// after `feeIncreaseDelay` through `applyFeeChange`. A new call replaces a pending change.
    function setFees(uint256 protocolFeePercent, uint256 subjectFeePercent) external onlyOwner {
        _checkCaps(protocolFeePercent, subjectFeePercent);
        FeeState memory current = _fees;
        if (pendingFees.eta != 0) _cancelPending();
        if (protocolFeePercent <= current.protocolFeePercent && subjectFeePercent <= current.subjectFeePercent) {
            _applyFees(protocolFeePercent, subjectFeePercent);
            return;
        }
        uint256 eta = block.timestamp + feeIncreaseDelay;
        pendingFees = PendingFees(uint64(protocolFeePercent), uint64(subjectFeePercent), uint64(eta));
        emit FeeChangeScheduled(protocolFeePercent, subjectFeePercent, eta);
    }

    /// @notice Apply the scheduled fee change once its delay has passed (anyone may call).
    function applyFeeChange() external {
        PendingFees memory pending = pendingFees;
        if (pending.eta == 0) revert TwinMarketNoPendingFeeChange();
        if (block.timestamp < pending.eta) revert TwinMarketTooEarly(pending.eta);
        delete pendingFees;
        _applyFees(pending.protocolFeePercent, pending.subjectFeePercent);
    }

    /// @notice Cancel the scheduled fee change.
    function cancelFeeChange() external onlyOwner {
        if (pendingFees.eta == 0) revert TwinMarketNoPendingFeeChange();
        _cancelPending();
    }

    /// @notice Propose a new protocol fee destination; it must accept after `feeIncreaseDelay`.
    function proposeFeeDestination(address destination) external onlyOwner {
        if (destination == address(0)) revert TwinMarketZeroAddress();
        uint256 eta = block.timestamp + feeIncreaseDelay;
        pendingFeeDestination = destination;
        pendingFeeDestinationEta = eta;
        emit FeeDestinationProposed(feeDestination, destination, eta);
    }

    /// @notice Accept the role of protocol fee destination (by the proposed address, after the delay).
    function acceptFeeDestination() external {
        if (msg.sender != pendingFeeDestination) revert TwinMarketNotPendingFeeDestination(msg.sender);
        if (block.timestamp < pendingFeeDestinationEta) revert TwinMarketTooEarly(pendingFeeDestinationEta);
        emit FeeDestinationChanged(feeDestination, msg.sender);
        feeDestination = msg.sender;
        delete pendingFeeDestination;
        delete pendingFeeDestinationEta;
    }

    /// @notice Replace the claim manager.
    function setClaimManager(address manager) external onlyOwner {
        if (manager == address(0)) revert TwinMarketZeroAddress();
        emit ClaimManagerChanged(claimManager, manager);
        claimManager = manager;
    }

    // ---------------------------------------------------------------- twins

    /// @notice Start moving twin `id` to `to` (claim manager only); `to` completes it after the delay, and
    /// the current owner or the claim manager may cancel it before.
    function startTwinOwnershipTransfer(bytes16 id, address to) external {
        if (msg.sender != claimManager) revert TwinMarketNotClaimManager(msg.sender);
        if (_twins[id].supply == 0) revert TwinMarketUnknownTwin(id);
        if (to == address(0)) revert TwinMarketZeroAddress();
        uint256 eta = block.timestamp + twinTransferDelay;
        pendingTwinTransfer[id] = PendingTransfer(to, uint64(eta));
        emit TwinOwnershipTransferStarted(id, twinOwner[id], to, eta);
    }

    /// @notice Cancel a pending twin ownership transfer.
    function cancelTwinOwnershipTransfer(bytes16 id) external {
        if (msg.sender != claimManager && msg.sender != twinOwner[id]) revert TwinMarketNotTwinOwner(id, msg.sender);
        if (pendingTwinTransfer[id].to == address(0)) revert TwinMarketNoPendingTransfer(id);
        delete pendingTwinTransfer[id];
        emit TwinOwnershipTransferCancelled(id);
    }

    /// @notice Complete a pending transfer of twin `id` (by its recipient, after the delay).
    function completeTwinOwnershipTransfer(bytes16 id) external {
        PendingTransfer memory pending = pendingTwinTransfer[id];
        if (pending.to == address(0)) revert TwinMarketNoPendingTransfer(id);
        if (pending.to != msg.sender) revert TwinMarketNotPendingTwinOwner(id, msg.sender);
        if (block.timestamp < pending.eta) revert TwinMarketTooEarly(pending.eta);
        delete pendingTwinTransfer[id];
        emit TwinOwnershipTransferred(id, twinOwner[id], msg.sender);
        twinOwner[id] = msg.sender;
    }

    /// @notice Change twin `id`'s URL (its owner only).
    function setTwinUrl(bytes16 id, string calldata url) external {
        if (twinOwner[id] != msg.sender) revert TwinMarketNotTwinOwner(id, msg.sender);
        twinUrl[id] = url;
        emit TwinUrlChanged(id, url);
    }

    // ---------------------------------------------------------------- views

    /// @notice Price of shares `supply + 1` to `supply + amount`: Σ (k−1)² · (1 ether / D), exact.
    function getPrice(uint256 supply, uint256 amount) public view returns (uint256) {
        return (_sumOfSquares(supply + amount) - _sumOfSquares(supply)) * priceUnit;
    }

    /// @inheritdoc ITwinMarket
    function getBuyPrice(bytes16 id, uint256 amount) public view returns (uint256) {
        return getPrice(_twins[id].supply, amount);
    }

    /// @inheritdoc ITwinMarket
    function getSellPrice(bytes16 id, uint256 amount) public view returns (uint256) {
        return getPrice(_twins[id].supply - amount, amount);
    }

    /// @inheritdoc ITwinMarket
    function getBuyPriceAfterFee(bytes16 id, uint256 amount) external view returns (uint256) {
        uint256 price = getBuyPrice(id, amount);
        return price + _feeOf(price, _fees.protocolFeePercent) + _feeOf(price, _fees.subjectFeePercent);
    }

    /// @inheritdoc ITwinMarket
    function getSellPriceAfterFee(bytes16 id, uint256 amount) external view returns (uint256) {
        uint256 price = getSellPrice(id, amount);
        return price - _feeOf(price, _fees.protocolFeePercent) - _feeOf(price, _fees.subjectFeePercent);
    }

    /// @inheritdoc ITwinMarket
    function hasAccess(address holder, bytes16 id) external view returns (bool) {
        return sharesBalance[id][holder] != 0;
    }

    /// @notice The fees in force (1e18 = 100%).
    function fees() external view returns (uint256 protocolFeePercent, uint256 subjectFeePercent) {
        return (_fees.protocolFeePercent, _fees.subjectFeePercent);
    }

    function protocolFeesAccrued() external view returns (uint256) {
        return _fees.protocolFeesAccrued;
    }

    function sharesSupply(bytes16 id) external view returns (uint256) {
        return _twins[id].supply;
    }

    function subjectFeesAccrued(bytes16 id) external view returns (uint256) {
        return _twins[id].subjectFees;
    }

    // ---------------------------------------------------------------- internals

    function _buy(bytes16 id, uint256 amount, uint256 maxCost, uint256 maxFeePercent, uint256 deadline) private {
        if (amount == 0) revert TwinMarketZeroAmount();
        if (block.timestamp > deadline) revert TwinMarketExpired(deadline);
        TwinState memory twin = _twins[id];
        uint256 price = getPrice(twin.supply, amount);
        (uint256 protocolFee, uint256 subjectFee) = _chargeFees(price, maxFeePercent);
        uint256 cost = price + protocolFee + subjectFee;
        if (cost > maxCost) revert TwinMarketCostAboveMax(cost, maxCost);
        if (msg.value < cost) revert TwinMarketInsufficientPayment(msg.value, cost);

        uint256 supplyAfter = twin.supply + amount;
        sharesBalance[id][msg.sender] += amount;
        _twins[id] = TwinState({
            supply: SafeCast.toUint128(supplyAfter),
            subjectFees: twin.subjectFees + SafeCast.toUint128(subjectFee)
        });
        emit Trade(msg.sender, id, true, amount, price, protocolFee, subjectFee, supplyAfter);
        if (msg.value > cost) Address.sendValue(payable(msg.sender), msg.value - cost);
    }

    /// @dev Computes both fees of a trade worth `price`, checks them against the trade's bound, and
    /// accrues the protocol fee.
    function _chargeFees(uint256 price, uint256 maxFeePercent) private returns (uint256 protocolFee, uint256 subjectFee) {
        FeeState memory state = _fees;
        uint256 totalPercent = uint256(state.protocolFeePercent) + state.subjectFeePercent;
        if (totalPercent > maxFeePercent) revert TwinMarketFeeAboveMax(totalPercent, maxFeePercent);
        protocolFee = _feeOf(price, state.protocolFeePercent);
        subjectFee = _feeOf(price, state.subjectFeePercent);
        if (protocolFee != 0) _fees.protocolFeesAccrued = state.protocolFeesAccrued + SafeCast.toUint128(protocolFee);
    }

    function _applyFees(uint256 protocolFeePercent, uint256 subjectFeePercent) private {
        FeeState memory current = _fees;
        _fees.protocolFeePercent = uint64(protocolFeePercent);
        _fees.subjectFeePercent = uint64(subjectFeePercent);
        emit FeesChanged(current.protocolFeePercent, current.subjectFeePercent, protocolFeePercent, subjectFeePercent);
    }

    function _cancelPending() private {
        PendingFees memory pending = pendingFees;
        delete pendingFees;
        emit FeeChangeCancelled(pending.protocolFeePercent, pending.subjectFeePercent);
    }

    function _checkCaps(uint256 protocolFeePercent, uint256 subjectFeePercent) private view {
        if (protocolFeePercent > protocolFeeCap) revert TwinMarketFeeAboveCap(protocolFeePercent, protocolFeeCap);
        if (subjectFeePercent > subjectFeeCap) revert TwinMarketFeeAboveCap(subjectFeePercent, subjectFeeCap);
    }

    function _feeOf(uint256 price, uint256 percent) private pure returns (uint256) {
        return price * percent / ONE;
    }

    /// @dev Σ_{j=0}^{n−1} j² = (n−1)·n·(2n−1)/6: the curve's sum over the first n shares.
    function _sumOfSquares(uint256 n) private pure returns (uint256) {
        return n == 0 ? 0 : (n - 1) * n * (2 * n - 1) / 6;
    }

    function _validDelay(uint256 delay) private pure returns (bool) {
        return delay >= MIN_DELAY && delay <= MAX_DELAY;
    }
}
