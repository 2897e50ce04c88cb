//! What the driver counts for `QUERY_STATS`: per socket and driver-wide, lock-free so every
//! completion routine can record at `DISPATCH_LEVEL`.
//!
//! IRQL: any, for every operation.

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use wskudp_abi::{FailureCount, SOCKET_FAILURE_SLOTS, STATS_FAILURE_SLOTS, SendCounters};

use crate::ddi::nt::NTSTATUS;

/// A level with its high-water mark and a ceiling: requests or datagrams in flight.
#[derive(Debug, Default, zerocopy::FromZeros)]
pub struct Gauge {
    now: AtomicU32,
    max: AtomicU32,
}

impl Gauge {
    /// Zero, no peak.
    pub(crate) const fn new() -> Self {
        Self {
            now: AtomicU32::new(0),
            max: AtomicU32::new(0),
        }
    }

    /// Adds one unless that would pass `limit`; `false` (nothing added) if it would.
    pub(crate) fn try_raise(&self, limit: u32) -> bool {
        let raised = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < limit).then(|| now.saturating_add(1))
            });
        raised.is_ok_and(|previous| {
            self.max
                .fetch_max(previous.saturating_add(1), Ordering::Relaxed);
            true
        })
    }

    /// Removes one added by [`Gauge::try_raise`].
    pub(crate) fn lower(&self) {
        self.lower_by(1);
    }

    /// Adds `n`, with no limit (saturating).
    pub(crate) fn raise_by(&self, n: u32) {
        let previous = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(n))
            })
            .unwrap_or(0);
        self.max
            .fetch_max(previous.saturating_add(n), Ordering::Relaxed);
    }

    /// Removes `n` added by [`Gauge::raise_by`].
    pub(crate) fn lower_by(&self, n: u32) {
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_sub(n)
            });
    }

    pub(crate) fn now(&self) -> u32 {
        self.now.load(Ordering::Acquire)
    }

    pub(crate) fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }
}

/// Failures by `NTSTATUS`: the first `N` distinct statuses each get a counter, later ones are
/// counted together as "other".
pub(crate) struct FailureTable<const N: usize> {
    statuses: [AtomicI32; N],
    counts: [AtomicU64; N],
    other: AtomicU64,
}

impl<const N: usize> Default for FailureTable<N> {
    fn default() -> Self {
        Self {
            statuses: core::array::from_fn(|_| AtomicI32::new(0)),
            counts: core::array::from_fn(|_| AtomicU64::new(0)),
            other: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> FailureTable<N> {
    #[cfg(test)]
    fn record(&self, status: NTSTATUS) {
        self.record_many(status, 1);
    }

    /// `n` datagrams failed with `status`.
    fn record_many(&self, status: NTSTATUS, n: u64) {
        for (slot, count) in self.statuses.iter().zip(&self.counts) {
            // 0 (STATUS_SUCCESS) marks a free slot: never a failure.
            let claimed = slot.compare_exchange(0, status, Ordering::AcqRel, Ordering::Acquire);
            if claimed.is_ok() || claimed == Err(status) {
                count.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        self.other.fetch_add(n, Ordering::Relaxed);
    }

    /// The table as the ABI lays it out, and the "other" count.
    pub(crate) fn snapshot(&self) -> ([FailureCount; N], u64) {
        let mut out = [FailureCount::default(); N];
        for ((entry, slot), count) in out.iter_mut().zip(&self.statuses).zip(&self.counts) {
            entry.status = slot.load(Ordering::Acquire);
            entry.count = count.load(Ordering::Relaxed);
        }
        (out, self.other.load(Ordering::Relaxed))
    }
}

/// What became of datagrams: of one `SEND` request, one socket, or the whole driver.
#[derive(Default)]
pub(crate) struct Tally {
    sent: AtomicU64,
    failed: AtomicU64,
    not_sent: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Tally {
    /// `n` datagrams completed with `status`, `bytes` sent by them together.
    pub(crate) fn record_many(&self, status: NTSTATUS, n: u64, bytes: usize) {
        if status >= 0 {
            self.sent.fetch_add(n, Ordering::Relaxed);
            self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// `count` datagrams were never handed to WSK (cancelled, or their socket closed).
    pub(crate) fn record_not_sent(&self, count: u64) {
        self.not_sent.fetch_add(count, Ordering::Relaxed);
    }

    /// The tally as the ABI lays it out, with no gauges.
    pub(crate) fn snapshot(&self) -> SendCounters {
        SendCounters {
            datagrams_sent: self.sent.load(Ordering::Relaxed),
            datagrams_failed: self.failed.load(Ordering::Relaxed),
            datagrams_not_sent: self.not_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            ..SendCounters::default()
        }
    }
}

/// Datagram and request counters of one socket, or of the whole driver.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) tally: Tally,
    /// `SEND` requests in flight.
    pub(crate) requests: Gauge,
    /// Datagrams handed to `WskSendTo` and not completed yet.
    pub(crate) datagrams: Gauge,
}

impl Counters {
    /// The counters as the ABI lays them out.
    pub(crate) fn snapshot(&self) -> SendCounters {
        SendCounters {
            requests_in_flight: self.requests.now(),
            requests_in_flight_max: self.requests.max(),
            datagrams_in_flight: self.datagrams.now(),
            datagrams_in_flight_max: self.datagrams.max(),
            ..self.tally.snapshot()
        }
    }
}

/// Counters and failures by status: of the whole driver, or of one socket.
#[derive(Default)]
pub(crate) struct Stats<const N: usize> {
    pub(crate) counters: Counters,
    failures: FailureTable<N>,
}

impl<const N: usize> Stats<N> {
    /// `n` datagrams completed with `status`, `bytes` sent by them together (counters and
    /// failures by status).
    pub(crate) fn record_many(&self, status: NTSTATUS, n: u64, bytes: usize) {
        self.counters.tally.record_many(status, n, bytes);
        if status < 0 {
            self.failures.record_many(status, n);
        }
    }

    pub(crate) const fn failures(&self) -> &FailureTable<N> {
        &self.failures
    }
}

/// Driver-wide statistics.
pub(crate) type DriverStats = Stats<STATS_FAILURE_SLOTS>;

/// One socket's statistics: the driver-wide ones for it alone, and the pool its requests hold.
#[derive(Default)]
pub(crate) struct SocketStatsCell {
    pub(crate) stats: Stats<SOCKET_FAILURE_SLOTS>,
    pub(crate) pool: PoolUse,
}

/// Pool blocks and bytes charged to an owner (a socket); the pool module counts them
/// driver-wide on its own.
#[derive(Default)]
pub(crate) struct PoolUse {
    blocks: AtomicU64,
    bytes: AtomicU64,
}

impl PoolUse {
    /// `blocks` blocks of `bytes` bytes in all are now held for this owner.
    pub(crate) fn charge(&self, blocks: u64, bytes: usize) {
        self.blocks.fetch_add(blocks, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Undoes a [`PoolUse::charge`] of the same amounts.
    pub(crate) fn discharge(&self, blocks: u64, bytes: usize) {
        self.blocks.fetch_sub(blocks, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes as u64, Ordering::Relaxed);
    }

    /// `(blocks, bytes)` held now.
    pub(crate) fn snapshot(&self) -> (u64, u64) {
        (
            self.blocks.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_stops_at_its_limit_and_keeps_its_peak() {
        let gauge = Gauge::default();
        assert!(gauge.try_raise(2));
        assert!(gauge.try_raise(2));
        assert!(!gauge.try_raise(2));
        gauge.lower();
        gauge.lower();
        gauge.lower();
        assert_eq!((gauge.now(), gauge.max()), (0, 2));
    }

    #[test]
    fn failures_are_counted_by_status_then_as_other() {
        let table = FailureTable::<STATS_FAILURE_SLOTS>::default();
        for status in 1..=(i32::try_from(STATS_FAILURE_SLOTS).unwrap() + 2) {
            table.record(-status);
            table.record(-status);
        }
        let (slots, other) = table.snapshot();
        assert!(slots.iter().all(|slot| slot.count == 2));
        assert_eq!(slots[0].status, -1);
        assert_eq!(other, 4);
    }
}
