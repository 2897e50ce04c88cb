//! The table of open sockets, keyed by handle and owned per device handle.
//!
//! A handle is `generation << 8 | (slot + 1)`: never zero, and a closed handle's number is
//! not valid again until its slot's generation wraps (65536 reuses).
//!
//! Lifetime of an entry: the table owns it; a send takes a rundown reference ([`SocketRef`])
//! under the shared lock; closing takes the entry out under the exclusive lock (its handle
//! stops working), begins closing the WSK socket (no new `WskSendTo`; `WskCloseSocket` as soon
//! as the calls in progress return, and the provider cancels and completes the IRPs still
//! pending), waits out the references (the `SEND` requests still finishing), waits for the
//! close to complete and frees the entry. Nothing in that sequence waits on the network: a
//! close is bounded even when the provider holds sends back.

use core::net::SocketAddr;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use wskudp_abi::{MAX_SOCKETS, SocketStats, WireAddr};

use crate::ddi::nt::NTSTATUS;
use crate::handle::HandleState;
use crate::pool::{PoolBox, TAG_SOCKET};
use crate::send::pool::SendPool;
use crate::stats::{Counters, SocketStatsCell};
use crate::status::{STATUS_FILE_CLOSED, STATUS_INVALID_HANDLE, STATUS_TOO_MANY_OPENED_FILES};
use crate::sync::{Rundown, SpinLock};
use crate::wsk::DatagramSocket;
use zerocopy::FromZeros;

/// The handle a socket belongs to: its [`HandleState`] number. Sockets are usable only
/// through the handle that opened them and are closed when it is cleaned up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Owner(pub(crate) u64);

impl Owner {
    /// The owner `handle` stands for.
    pub(crate) fn of(handle: &HandleState) -> Self {
        Self(handle.id())
    }
}

const SLOTS: usize = MAX_SOCKETS as usize;
const _: () = assert!(
    SLOTS < 256,
    "the slot index must fit in the handle's low byte"
);

/// What a send needs to know of its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketInfo {
    /// The address it is bound to.
    pub(crate) local: SocketAddr,
    /// Its fixed destination (`SIO_WSK_SET_SENDTO_ADDRESS`), if set.
    pub(crate) destination: Option<SocketAddr>,
    /// What its provider supports ([`wskudp_abi::feature`] bits).
    pub(crate) features: u32,
}

impl SocketInfo {
    /// An `AF_INET6` socket that also reaches IPv4 destinations.
    pub(crate) const fn dual_stack(&self) -> bool {
        self.features & wskudp_abi::feature::DUAL_STACK != 0
    }
}

/// What a socket is opened as, besides its WSK socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Opened {
    /// The address it is bound to.
    pub(crate) local: SocketAddr,
    /// Features probed at open, with [`wskudp_abi::feature::DUAL_STACK`] for a dual-stack one.
    pub(crate) features: u32,
}

/// One open socket.
struct SocketEntry {
    owner: Owner,
    opened: Opened,
    destination: SpinLock<Option<SocketAddr>>,
    rundown: Rundown,
    stats: SocketStatsCell,
    /// A send completed with `STATUS_FILE_FORCED_CLOSED`: the socket is being closed and
    /// later requests on it get that status.
    forced_closed: AtomicBool,
    /// Send contexts and payload buffers, reused by every send on the socket. Declared before
    /// `socket`: dropped first, once no send is in flight.
    pool: SendPool,
    socket: DatagramSocket,
}

/// One slot; all-zero is a free slot of generation 0.
///
/// # Invariants
/// `entry`, when `Some`, came from `PoolBox::into_raw` (tag `TAG_SOCKET`) and is owned by
/// the table; `reserved` and `entry` are never set together.
#[derive(FromZeros)]
struct Slot {
    generation: u16,
    /// Claimed by an `OPEN_SOCKET` still creating its socket.
    reserved: bool,
    entry: Option<NonNull<SocketEntry>>,
}

// SAFETY: The slot owns its entry (type invariant); SocketEntry is Send, so moving the slot
// moves an owned SocketEntry.
unsafe impl Send for Slot {}
// SAFETY: Shared access only reads the entry (`&SocketEntry`), and SocketEntry is Sync.
unsafe impl Sync for Slot {}

impl Slot {
    /// The open socket in this slot.
    const fn entry(&self) -> Option<&SocketEntry> {
        match self.entry {
            // SAFETY: An entry in the table is live until it is taken out (type invariant),
            // and the caller holds the table lock.
            Some(entry) => Some(unsafe { entry.as_ref() }),
            None => None,
        }
    }

    const fn is_free(&self) -> bool {
        !self.reserved && self.entry.is_none()
    }
}

/// The socket table. All-zero is an empty table, so it is allocated in place
/// ([`PoolBox::try_new_zeroed`]) rather than built on a kernel stack.
///
/// IRQL: lookups (`reference`) at <= `DISPATCH_LEVEL`; everything that opens or closes a
/// socket at `PASSIVE_LEVEL`.
#[derive(FromZeros)]
pub(crate) struct SocketTable {
    slots: SpinLock<[Slot; SLOTS]>,
}

/// A claimed slot, released unless [`Reservation::fill`] consumes it.
pub(crate) struct Reservation<'a> {
    table: &'a SocketTable,
    index: usize,
}

/// A socket that cannot be closed while this reference lives (rundown protection).
///
/// IRQL: <= `DISPATCH_LEVEL`, including drop.
///
/// # Invariants
/// `entry` is a live socket entry on which this value owns one rundown reference.
pub(crate) struct SocketRef {
    entry: NonNull<SocketEntry>,
}

// SAFETY: The reference may be released from any thread (rundown references are not
// thread-affine), and the entry is only read through it.
unsafe impl Send for SocketRef {}
// SAFETY: As above.
unsafe impl Sync for SocketRef {}

impl SocketRef {
    const fn entry(&self) -> &SocketEntry {
        // SAFETY: The rundown reference keeps the entry alive (type invariant).
        unsafe { self.entry.as_ref() }
    }

    /// The WSK socket.
    #[must_use]
    pub(crate) const fn socket(&self) -> &DatagramSocket {
        &self.entry().socket
    }

    /// What a send needs to know of the socket.
    #[must_use]
    pub(crate) fn info(&self) -> SocketInfo {
        let entry = self.entry();
        SocketInfo {
            local: entry.opened.local,
            destination: *entry.destination.lock_shared(),
            features: entry.opened.features,
        }
    }

    /// Records the fixed destination set with `SIO_WSK_SET_SENDTO_ADDRESS`.
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn set_destination(&self, destination: SocketAddr) {
        *self.entry().destination.lock_exclusive() = Some(destination);
    }

    /// The socket's counters.
    #[must_use]
    pub(crate) const fn counters(&self) -> &Counters {
        &self.entry().stats.stats.counters
    }

    /// The socket's statistics: counters, failures by status, pool its requests hold.
    #[must_use]
    pub(crate) const fn stats(&self) -> &SocketStatsCell {
        &self.entry().stats
    }

    /// The socket's send pool.
    #[must_use]
    pub(crate) const fn pool(&self) -> &SendPool {
        &self.entry().pool
    }

    /// The provider said the socket is no longer functional (`STATUS_FILE_FORCED_CLOSED`), in
    /// a completion routine: remember it, so that later requests get that status and the next
    /// thread to issue closes the socket ([`SocketRef::force_close`]). IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn mark_forced_closed(&self) {
        self.entry().forced_closed.store(true, Ordering::Release);
    }

    /// Closes a socket the provider forced closed as soon as possible, as the `WskSendTo` page
    /// requires. Not from a completion routine (it may call `WskCloseSocket`).
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn force_close(&self) {
        self.mark_forced_closed();
        self.socket().begin_close();
    }

    /// Whether the provider forced the socket closed.
    #[must_use]
    pub(crate) fn is_forced_closed(&self) -> bool {
        self.entry().forced_closed.load(Ordering::Acquire)
    }
}

impl Drop for SocketRef {
    fn drop(&mut self) {
        // SAFETY: This value owns one reference (type invariant) and gives it up once.
        unsafe { self.entry().rundown.release() };
    }
}

const fn handle_of(index: usize, generation: u16) -> u32 {
    // `index < SLOTS < 256`, so `index + 1` fits in the low byte.
    let low = (index.to_le_bytes()[0]).saturating_add(1);
    ((generation as u32) << 8) | low as u32
}

/// The open sockets in `slots` with their handles: `owner`'s, or everyone's if `None`.
fn open_entries(
    slots: &[Slot; SLOTS],
    owner: Option<Owner>,
) -> impl Iterator<Item = (u32, &SocketEntry)> {
    slots.iter().enumerate().filter_map(move |(index, slot)| {
        slot.entry()
            .filter(|entry| owner.is_none_or(|o| o == entry.owner))
            .map(|entry| (handle_of(index, slot.generation), entry))
    })
}

/// The slot index a handle names, if its low byte is in range.
fn index_of(handle: u32) -> Option<usize> {
    let low = (handle & 0xFF) as usize;
    low.checked_sub(1).filter(|index| *index < SLOTS)
}

impl SocketTable {
    /// Claims a free slot for a socket about to be opened. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_TOO_MANY_OPENED_FILES` when all [`MAX_SOCKETS`] slots are in use.
    pub(crate) fn reserve(&self) -> Result<Reservation<'_>, NTSTATUS> {
        let mut slots = self.slots.lock_exclusive();
        let index = slots
            .iter()
            .position(Slot::is_free)
            .ok_or(STATUS_TOO_MANY_OPENED_FILES)?;
        if let Some(slot) = slots.get_mut(index) {
            slot.reserved = true;
        }
        Ok(Reservation { table: self, index })
    }

    /// A rundown reference on `owner`'s socket `handle`. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INVALID_HANDLE` if the handle is not open, belongs to another owner, or is
    /// being closed.
    pub(crate) fn reference(&self, owner: Owner, handle: u32) -> Result<SocketRef, NTSTATUS> {
        let slots = self.slots.lock_shared();
        let index = index_of(handle).ok_or(STATUS_INVALID_HANDLE)?;
        let slot = slots.get(index).ok_or(STATUS_INVALID_HANDLE)?;
        match (slot.entry, slot.entry()) {
            (Some(pointer), Some(entry))
                if handle_of(index, slot.generation) == handle
                    && entry.owner == owner
                    && entry.rundown.try_acquire() =>
            {
                // INVARIANT: one rundown reference was just taken on this live entry.
                Ok(SocketRef { entry: pointer })
            }
            _ => Err(STATUS_INVALID_HANDLE),
        }
    }

    /// Takes `owner`'s socket `handle` out of the table (its handle stops working at once).
    /// IRQL: <= `DISPATCH_LEVEL` (the entry is returned, not dropped, under the lock).
    fn take(&self, owner: Owner, handle: u32) -> Option<PoolBox<SocketEntry>> {
        let mut slots = self.slots.lock_exclusive();
        let index = index_of(handle)?;
        let slot = slots.get_mut(index)?;
        let matches = slot.entry().is_some_and(|entry| {
            handle_of(index, slot.generation) == handle && entry.owner == owner
        });
        if !matches {
            return None;
        }
        slot.generation = slot.generation.wrapping_add(1);
        let entry = slot.entry.take()?;
        // SAFETY: The entry came from PoolBox::into_raw with TAG_SOCKET and leaves the table
        // here, once (type invariant of Slot).
        Some(unsafe { PoolBox::from_raw(entry, TAG_SOCKET) })
    }

    /// The handle of any open socket of `owner` (any owner if `None`). IRQL: <= `DISPATCH_LEVEL`.
    fn any_handle(&self, owner: Option<Owner>) -> Option<(Owner, u32)> {
        let slots = self.slots.lock_shared();
        open_entries(&slots, owner)
            .next()
            .map(|(handle, entry)| (entry.owner, handle))
    }

    /// Closes `owner`'s socket `handle`: bounded, see the module docs.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INVALID_HANDLE` if the handle is not open for this owner.
    pub(crate) fn close(&self, owner: Owner, handle: u32) -> Result<(), NTSTATUS> {
        crate::paged_code!();
        let entry = self.take(owner, handle).ok_or(STATUS_INVALID_HANDLE)?;
        // No new send starts; WskCloseSocket cancels and completes the pending ones.
        entry.socket.begin_close();
        entry.rundown.wait();
        // Dropping the entry waits for WskCloseSocket to complete and frees it.
        drop(entry);
        Ok(())
    }

    /// Marks `handle` cleaned up, so that no socket is published for it any more (see
    /// [`Reservation::fill`]). IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn stop_publishing(&self, handle: &HandleState) {
        let _slots = self.slots.lock_exclusive();
        handle.mark_cleaned_up();
    }

    /// Closes every socket of `owner`, or every socket if `None`.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    pub(crate) fn close_all(&self, owner: Option<Owner>) {
        crate::paged_code!();
        while let Some((found, handle)) = self.any_handle(owner) {
            // Only this thread closes on behalf of `owner` (cleanup / unload), so the handle
            // found is still open; a concurrent CLOSE_SOCKET of the same handle is harmless.
            let _ = self.close(found, handle);
        }
    }

    /// Fills `out` with the statistics of `owner`'s sockets and returns how many there are.
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn fill_stats(&self, owner: Owner, out: &mut [SocketStats]) -> u32 {
        let slots = self.slots.lock_shared();
        let mut count: u32 = 0;
        for (stats, (handle, entry)) in out.iter_mut().zip(open_entries(&slots, Some(owner))) {
            let (failures, failures_other) = entry.stats.stats.failures().snapshot();
            let (pool_blocks, pool_bytes) = entry.stats.pool.snapshot();
            *stats = SocketStats {
                socket: handle,
                flags: if entry.forced_closed.load(Ordering::Acquire) {
                    SocketStats::FLAG_FORCED_CLOSED
                } else {
                    0
                },
                local: WireAddr::from_socket_addr(entry.opened.local),
                counters: entry.stats.stats.counters.snapshot(),
                failures,
                failures_other,
                pool_blocks,
                pool_bytes,
            };
            count = count.saturating_add(1);
        }
        count
    }

    /// Sockets currently open. IRQL: <= `DISPATCH_LEVEL`.
    #[must_use]
    pub(crate) fn open_count(&self) -> u32 {
        let slots = self.slots.lock_shared();
        let open = slots.iter().filter(|slot| slot.entry.is_some()).count();
        u32::try_from(open).unwrap_or(u32::MAX)
    }
}

impl Reservation<'_> {
    /// Publishes an opened socket in the reserved slot for `handle` and returns its number.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_FILE_CLOSED` if the handle was cleaned up meanwhile,
    /// `STATUS_INSUFFICIENT_RESOURCES` if the entry cannot be allocated; either way the socket
    /// is closed and the slot released.
    pub(crate) fn fill(
        self,
        handle: &HandleState,
        socket: DatagramSocket,
        opened: Opened,
    ) -> Result<u32, NTSTATUS> {
        let entry = PoolBox::try_new(
            SocketEntry {
                owner: Owner::of(handle),
                opened,
                destination: SpinLock::new(None),
                rundown: Rundown::new(),
                stats: SocketStatsCell::default(),
                forced_closed: AtomicBool::new(false),
                pool: SendPool::new(),
                socket,
            },
            TAG_SOCKET,
        )?;
        // Sized now, at PASSIVE_LEVEL, so the first sends allocate nothing.
        entry.pool.fill()?;
        // SAFETY: Structural pinning: the rundown is a field of a pinned entry and is never
        // moved out of it.
        unsafe { PoolBox::as_pin(&entry).map_unchecked(|entry| &entry.rundown) }.init();
        let mut entry = Some(entry);
        let mut slots = self.table.slots.lock_exclusive();
        if handle.is_cleaned_up() {
            // Cleanup ran while the socket was being opened: it has already closed this
            // handle's sockets and will not look again. Close this one (after the lock).
            drop(slots);
            drop(entry);
            return Err(STATUS_FILE_CLOSED);
        }
        let number = slots.get_mut(self.index).map(|slot| {
            // INVARIANT: the entry is given to the table as a raw pointer it now owns; the
            // slot stops being reserved.
            slot.entry = entry.take().map(PoolBox::into_raw);
            slot.reserved = false;
            handle_of(self.index, slot.generation)
        });
        drop(slots);
        // The reserved index is always in range; if it were not, the entry (and its socket)
        // is released here, at PASSIVE_LEVEL, not under the lock.
        drop(entry);
        let number = number.ok_or(STATUS_INVALID_HANDLE)?;
        core::mem::forget(self);
        Ok(number)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut slots = self.table.slots.lock_exclusive();
        if let Some(slot) = slots.get_mut(self.index) {
            slot.reserved = false;
        }
    }
}
