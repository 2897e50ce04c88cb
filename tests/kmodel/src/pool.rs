//! `ExAllocatePool2` / `ExFreePoolWithTag` / `ExFreePool`, with per-tag tracking and a
//! quarantine of freed blocks.

use std::alloc::Layout;
use std::ffi::c_void;

use crate::faults::{self, Site};
use crate::irql::{self, APC_LEVEL, DISPATCH_LEVEL};
use crate::state::{self, PoolBlock, tag_name};

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
    let mut inner = state::lock();
    inner.stats.pool_allocations += 1;
    *inner.allocations_by_tag.entry(tag).or_insert(0) += 1;
    inner.pool.insert(
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
    let mut inner = state::lock();
    let Some(block) = inner.pool.remove(&addr) else {
        drop(inner);
        state::violation(
            "PoolFreeUnknown",
            format!("{ddi}({addr:#x}) of a block that is not allocated (double free?)"),
        );
        return;
    };
    drop(inner);
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
    let mut inner = state::lock();
    inner.quarantine.push_back((addr, block.size));
    if inner.quarantine.len() > QUARANTINE
        && let Some((old, size)) = inner.quarantine.pop_front()
    {
        release(old, size);
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
    let blocks: Vec<_> = state::lock().quarantine.drain(..).collect();
    for (addr, size) in blocks {
        release(addr, size);
    }
}

/// `true` if `[addr, addr + len)` overlaps a block the driver already freed.
pub(crate) fn is_quarantined(addr: usize, len: usize) -> bool {
    let end = addr.saturating_add(len);
    state::lock()
        .quarantine
        .iter()
        .any(|(base, size)| addr < base + (*size).max(1) && *base < end)
}

/// `true` if `[addr, addr + len)` lies inside one live non-paged pool block.
pub(crate) fn is_live_nonpaged(addr: usize, len: usize) -> bool {
    let inner = state::lock();
    inner
        .pool
        .range(..=addr)
        .next_back()
        .is_some_and(|(base, block)| {
            block.nonpaged
                && addr
                    .checked_add(len)
                    .is_some_and(|end| end <= base + block.size.max(1))
        })
}
