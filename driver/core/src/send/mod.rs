//! The send path: a `SEND` (or `BENCH`) request becomes WSK calls on pooled send contexts,
//! every buffer held until its IRP completes.
//!
//! - [`datagram`]: what one datagram is (route, control messages, `SOCKADDR`, payload in a
//!   pooled buffer with its MDL chain).
//! - [`pool`]: each socket's send contexts (IRP reused with `IoReuseIrp`) and payload buffers
//!   (MDLs built once), so a socket that keeps sending allocates nothing.
//! - [`batch`]: one request's job: the window, the pump, completion, cancel, the response.
//! - [`deferred`]: the work item that issues what completion routines may not.
//!
//! A `SEND` of `count` copies goes out as `WskSendMessages` calls of up to [`SEND_BATCH`]
//! datagrams where the provider has the function (Windows 8 and later), else one `WskSendTo`
//! per datagram; either way at most `SEND_WINDOW` datagrams of one request are in flight.
//! Every datagram of a `WskSendMessages` call is the same datagram: one destination, one
//! control buffer (the `PFN_WSK_SEND_MESSAGES` page: `ControlInfo` holds "control information
//! that is associated with the datagrams", all of them), one MDL chain.

mod batch;
mod datagram;
mod deferred;
pub(crate) mod pool;

use core::pin::Pin;

use wskudp_abi::{SEND_WINDOW, SendSpec};

pub(crate) use batch::{Answer, Api, BatchMemory, Plan, start};
pub(crate) use datagram::{Addressing, Datagram, destination_sockaddr};
use deferred::Pumps;
pub(crate) use pool::Payload;

use crate::cache::Cache;
use crate::ddi::nt::NTSTATUS;
use crate::irp::DriverDevice;
use crate::pool::TAG_BATCH;
use crate::stats::DriverStats;

/// Datagrams per `WskSendMessages` call of a `SEND` request: half its window, so while one call
/// is with the provider the next can be issued.
pub(crate) const SEND_BATCH: u32 = SEND_WINDOW / 2;
/// Request contexts the driver keeps for reuse: one per request a handle may have in flight.
const BATCH_DEPTH: usize = wskudp_abi::MAX_SENDS_PER_HANDLE as usize;

/// The driver-wide part of the send path: statistics, the request contexts kept for reuse and
/// the work item. Lives in the driver state, so it outlives every socket and request.
pub(crate) struct Sender {
    /// Driver-wide counters.
    pub(crate) stats: DriverStats,
    batches: Cache<BatchMemory>,
    pumps: Pumps,
}

impl Sender {
    /// Empty; [`Sender::init`] allocates the work item once at its final address.
    pub(crate) fn new() -> Self {
        Self {
            stats: DriverStats::default(),
            batches: Cache::new(BATCH_DEPTH, TAG_BATCH),
            pumps: Pumps::new(),
        }
    }

    /// Allocates the work item. IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) fn init(self: Pin<&Self>, device: DriverDevice) -> Result<(), NTSTATUS> {
        // SAFETY: Structural pinning: the pumps are a field of a pinned value, never moved.
        unsafe { self.map_unchecked(|sender| &sender.pumps) }.init(device)
    }
}

/// The plan of a `SEND` of `spec.count` datagrams: batches of [`SEND_BATCH`] where the
/// provider has `WskSendMessages`, else one `WskSendTo` per datagram; `SEND_WINDOW` datagrams
/// in flight either way. IRQL: any.
pub(crate) const fn send_plan(spec: &SendSpec, send_messages: bool, version: u32) -> Plan {
    let (api, batch) = if send_messages {
        (Api::SendMessages, SEND_BATCH)
    } else {
        (Api::SendTo, 1)
    };
    Plan {
        count: spec.count as u64,
        api,
        batch,
        depth: SEND_WINDOW.div_ceil(batch),
        rate: 0,
        answer: Answer::Send { version },
    }
}

/// Pool blocks, IRPs and MDLs the driver allocated since it loaded. IRQL: any.
#[must_use]
pub(crate) fn allocations() -> u64 {
    crate::pool::allocations()
        .saturating_add(crate::irp::allocations())
        .saturating_add(crate::mdl::allocations())
}
