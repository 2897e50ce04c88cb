//! `ExAllocatePool2` / `ExFreePoolWithTag` / `ExFreePool`, with per-tag tracking and a
//! quarantine of freed blocks.

use std::alloc::Layout;
use std::ffi::c_void;
use std::sync::LazyLock;

use crossbeam_queue::ArrayQueue;
use crossbeam_skiplist::SkipMap;

use crate::faults::{self, Site};
use crate::irql::{self, APC_LEVEL, DISPATCH_LEVEL};
use crate::state::{self, PoolBlock, TABLES, tag_name};

/// `POOL_FLAG_UNINITIALIZED`.
const POOL_FLAG_UNINITIALIZED: u64 = 0x0000_0000_0000_0002;
/// `POOL_FLAG_NON_PAGED`.
const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;
/// `POOL_FLAG_NON_PAGED_EXECUTE`.
const POOL_FLAG_NON_PAGED_EXECUTE: u64 = 0x0000_0000_0000_0080;
/// `POOL_FLAG_PAGED`.
const POOL_FLAG_PAGED: u64 = 0x0000_0000_0000_0100;
/// `MEMORY_ALLOCATION_ALIGNMENT` on x64.
const ALIGN: usize = 16;
/// Freed blocks kept mapped (poisoned) before they are really released.
const QUARANTINE: usize = 4096;
/// What freed memory is filled with (Verifier's special pool uses a similar pattern).
const FREED_FILL: u8 = 0xDD;
/// What `POOL_FLAG_UNINITIALIZED` memory is filled with, so reliance on zeroing shows.
const UNINITIALIZED_FILL: u8 = 0xCD;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1), ALIGN).ok()
}

/// `ExAllocatePool2` (IRQL <= `DISPATCH_LEVEL` for non-paged, <= `APC_LEVEL` for paged).
///
/// # Safety
/// None beyond the DDI's own contract; exported with `unsafe` like every DDI.
#[unsafe(export_name = "ExAllocatePool2")]
pub(crate) unsafe extern "system" fn ex_allocate_pool2(
    flags: u64,
    size: usize,
    tag: u32,
) -> *mut c_void {
    let _model = crate::accounting::InModel::enter();
    let kind = flags & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_PAGED);
    let nonpaged = match kind {
        POOL_FLAG_NON_PAGED => true,
        POOL_FLAG_PAGED => false,
        POOL_FLAG_NON_PAGED_EXECUTE => {
            state::violation(
                "ExecutablePool",
                format!(
                    "ExAllocatePool2 of executable non-paged pool, tag {}",
                    tag_name(tag)
                ),
            );
            true
        }
        _ => {
            state::violation(
                "PoolFlags",
                format!("ExAllocatePool2 flags {flags:#x} name no single pool type"),
            );
            return std::ptr::null_mut();
        }
    };
    irql::require_at_most(
        "ExAllocatePool2",
        if nonpaged { DISPATCH_LEVEL } else { APC_LEVEL },
    );
    if tag == 0 {
        state::violation("PoolTagZero", "ExAllocatePool2 with tag 0".into());
    }
    if faults::should_fail(Site::Pool) {
        return std::ptr::null_mut();
    }
    let Some(layout) = layout(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `layout` has a non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        return std::ptr::null_mut();
    }
    if flags & POOL_FLAG_UNINITIALIZED != 0 {
        // SAFETY: `ptr` is a fresh block of `layout.size()` bytes.
        unsafe { ptr.write_bytes(UNINITIALIZED_FILL, layout.size()) };
    }
    state::bump(&TABLES.stats.pool_allocations);
    state::count_allocation(tag);
    TABLES.pool.insert(
        ptr.expose_provenance(),
        PoolBlock {
            size,
            tag,
            nonpaged,
        },
    );
    ptr.cast()
}

/// `ExFreePoolWithTag` (IRQL <= `DISPATCH_LEVEL` for non-paged).
///
/// # Safety
/// `p` must be a block from `ExAllocatePool2`.
#[unsafe(export_name = "ExFreePoolWithTag")]
pub(crate) unsafe extern "system" fn ex_free_pool_with_tag(p: *mut c_void, tag: u32) {
    let _model = crate::accounting::InModel::enter();
    free(p, Some(tag), "ExFreePoolWithTag");
}

/// `ExFreePool` (IRQL <= `DISPATCH_LEVEL` for non-paged): `ExFreePoolWithTag` without the tag
/// check (for drivers that do not call core's pool, such as the KMDF echo sample).
///
/// # Safety
/// `p` must be a block from `ExAllocatePool2`.
#[unsafe(export_name = "ExFreePool")]
pub(crate) unsafe extern "system" fn ex_free_pool(p: *mut c_void) {
    free(p, None, "ExFreePool");
}

fn free(p: *mut c_void, tag: Option<u32>, ddi: &str) {
    let addr = p.expose_provenance();
    // Only one of two racing frees removes the entry; the other is reported.
    let Some(block) = TABLES.pool.remove(&addr).map(|entry| *entry.value()) else {
        state::violation(
            "PoolFreeUnknown",
            format!("{ddi}({addr:#x}) of a block that is not allocated (double free?)"),
        );
        return;
    };
    irql::require_at_most(
        ddi,
        if block.nonpaged {
            DISPATCH_LEVEL
        } else {
            APC_LEVEL
        },
    );
    if let Some(tag) = tag
        && block.tag != tag
    {
        state::violation(
            "PoolTagMismatch",
            format!(
                "{ddi}({addr:#x}, {}) of a block tagged {}",
                tag_name(tag),
                tag_name(block.tag)
            ),
        );
    }
    // SAFETY: The block was allocated with this size (tracked) and is no longer live.
    unsafe { p.cast::<u8>().write_bytes(FREED_FILL, block.size.max(1)) };
    quarantine(addr, block.size);
}

/// Freed pool blocks kept mapped (poisoned) so a late read by the driver sees garbage rather
/// than another allocation: a FIFO of at most [`QUARANTINE`] blocks (the oldest is really
/// released when a new one comes in), and the same blocks by address for the overlap check.
/// Both are lock-free; a block is in the map before it is queued and leaves the map before it
/// is released, so the check never misses a block still quarantined.
struct Quarantine {
    fifo: ArrayQueue<(usize, usize)>,
    by_address: SkipMap<usize, usize>,
}

static QUARANTINED: LazyLock<Quarantine> = LazyLock::new(|| Quarantine {
    fifo: ArrayQueue::new(QUARANTINE),
    by_address: SkipMap::new(),
});

fn quarantine(addr: usize, size: usize) {
    let quarantine = &*QUARANTINED;
    quarantine.by_address.insert(addr, size);
    if let Some((old, old_size)) = quarantine.fifo.force_push((addr, size)) {
        quarantine.by_address.remove(&old);
        release(old, old_size);
    }
}

/// Really frees a quarantined block.
fn release(addr: usize, size: usize) {
    if let Some(layout) = layout(size) {
        // SAFETY: `addr` came from alloc_zeroed with this layout and was freed by the driver.
        unsafe { std::alloc::dealloc(std::ptr::with_exposed_provenance_mut(addr), layout) };
    }
}

/// Releases every quarantined block (at shutdown).
pub(crate) fn drain_quarantine() {
    let quarantine = &*QUARANTINED;
    while let Some((addr, size)) = quarantine.fifo.pop() {
        quarantine.by_address.remove(&addr);
        release(addr, size);
    }
}

/// `true` if `[addr, addr + len)` overlaps a block the driver already freed.
///
/// Quarantined blocks never overlap one another (each is still allocated), so only the last
/// one starting before `addr + len` can reach into the range: one O(log n) lookup.
pub(crate) fn is_quarantined(addr: usize, len: usize) -> bool {
    overlaps(&QUARANTINED.by_address, addr, len)
}

/// Whether `[addr, addr + len)` overlaps one of `blocks` (base to size, disjoint).
fn overlaps(blocks: &SkipMap<usize, usize>, addr: usize, len: usize) -> bool {
    let end = addr.saturating_add(len);
    blocks
        .upper_bound(std::ops::Bound::Excluded(&end))
        .is_some_and(|entry| addr < entry.key() + (*entry.value()).max(1))
}

/// `true` if `[addr, addr + len)` lies inside one live non-paged pool block.
pub(crate) fn is_live_nonpaged(addr: usize, len: usize) -> bool {
    TABLES
        .pool
        .upper_bound(std::ops::Bound::Included(&addr))
        .is_some_and(|entry| {
            let (base, block) = (*entry.key(), entry.value());
            block.nonpaged
                && addr
                    .checked_add(len)
                    .is_some_and(|end| end <= base + block.size.max(1))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The O(log n) lookup finds exactly what a scan of every block would.
    #[test]
    fn overlap_matches_a_scan() {
        let blocks = SkipMap::new();
        for (base, size) in [(100, 10), (110, 0), (120, 30), (200, 1)] {
            blocks.insert(base, size);
        }
        let scan = |addr: usize, len: usize| {
            blocks
                .iter()
                .any(|e| addr < e.key() + (*e.value()).max(1) && *e.key() < addr + len)
        };
        for addr in 90..210 {
            for len in 0..40 {
                assert_eq!(
                    overlaps(&blocks, addr, len),
                    scan(addr, len),
                    "[{addr}, +{len})"
                );
            }
        }
    }
}
