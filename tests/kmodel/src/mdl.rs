//! MDLs: `IoAllocateMdl`, `MmBuildMdlForNonPagedPool`, `IoFreeMdl`, and the provider's view
//! of a `WSK_BUF` (reading the data an MDL chain describes, with every check Verifier's MDL
//! checks would make).

use std::alloc::Layout;
use std::ffi::c_void;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Wdk::Foundation::{IRP, MDL};
use windows_sys::Wdk::System::SystemServices::MDL_ALLOCATED_FIXED_SIZE;
use wskudp_core::ddi::nt::{
    MDL_MAPPED_TO_SYSTEM_VA, MDL_PAGES_LOCKED, MDL_SOURCE_IS_NONPAGED_POOL,
};
use wskudp_core::ddi::wsk::WSK_BUF;

use crate::faults::{self, Site};
use crate::irql::{self, DISPATCH_LEVEL};
use crate::pool;
use crate::state::{self, TABLES};

const PAGE_SIZE: usize = 4096;

fn layout(pages: usize) -> Option<Layout> {
    Layout::from_size_align(
        size_of::<MDL>() + pages * size_of::<usize>(),
        align_of::<MDL>(),
    )
    .ok()
}

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES`.
const fn span_pages(va: usize, len: usize) -> usize {
    ((va % PAGE_SIZE) + len).div_ceil(PAGE_SIZE)
}

/// `IoAllocateMdl` (IRQL <= `DISPATCH_LEVEL`). Only the form wskudp uses is modelled: no IRP
/// association.
///
/// # Safety
/// None beyond the DDI's contract.
#[unsafe(export_name = "IoAllocateMdl")]
pub(crate) unsafe extern "system" fn io_allocate_mdl(
    virtual_address: *const c_void,
    length: u32,
    _secondary_buffer: bool,
    _charge_quota: bool,
    irp: *mut IRP,
) -> *mut MDL {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoAllocateMdl", DISPATCH_LEVEL);
    if !irp.is_null() {
        state::violation(
            "MdlUnsupported",
            "IoAllocateMdl with an IRP is not modelled".into(),
        );
        return std::ptr::null_mut();
    }
    if length == 0 {
        state::violation(
            "MdlZeroLength",
            format!("IoAllocateMdl({virtual_address:p}, 0)"),
        );
        return std::ptr::null_mut();
    }
    if faults::should_fail(Site::Mdl) {
        return std::ptr::null_mut();
    }
    #[allow(clippy::cast_possible_truncation)]
    let Some((mdl, _, pages)) = new_mdl(
        virtual_address.expose_provenance(),
        length,
        MDL_ALLOCATED_FIXED_SIZE as i16,
    ) else {
        return std::ptr::null_mut();
    };
    state::bump(&TABLES.stats.mdl_allocations);
    TABLES.mdls.insert(mdl.expose_provenance(), pages);
    mdl
}

/// The MDL the I/O manager builds over a caller's buffer for a direct-I/O IOCTL
/// (`IoAllocateMdl`, then `MmProbeAndLockPages`: pages locked, not mapped to a system
/// address); the I/O manager owns and frees it, so no driver leak is tracked.
pub(crate) fn build_locked(va: usize, len: usize) -> Option<(usize, Layout)> {
    let (mdl, layout, pages) = new_mdl(va, u32::try_from(len).ok()?, MDL_PAGES_LOCKED)?;
    fill_pfns(mdl, pages);
    TABLES
        .request_mdls
        .insert(mdl.expose_provenance(), AtomicBool::new(true));
    Some((mdl.expose_provenance(), layout))
}

/// The request owning the locked MDL `mdl` completed: `IopCompleteRequest` unlocks its pages
/// (`MmUnlockPages`) and frees it, so nothing may read it or a partial MDL built over it
/// after that. KMDF's DDI rule `MdlAfterReqCompletedIoctl` states the same for a driver: "the
/// MDL is only valid until the request is completed" (`WdfRequestRetrieveOutputWdmMdl`).
pub(crate) fn unlock_request_mdl(mdl: usize) {
    if let Some(entry) = TABLES.request_mdls.get(&mdl) {
        entry.value().store(false, Ordering::Release);
    }
}

/// The request owning `mdl` was retired: its MDL is freed.
pub(crate) fn forget_request_mdl(mdl: usize) {
    TABLES.request_mdls.remove(&mdl);
}

/// The request MDL whose pages `mdl` describes: itself, or the source of a partial MDL built
/// over one. `None`: the driver's own MDL over pool.
fn request_source(mdl: usize) -> Option<usize> {
    if TABLES.request_mdls.contains_key(&mdl) {
        return Some(mdl);
    }
    TABLES.partial_sources.get(&mdl).map(|entry| *entry.value())
}

/// A zeroed MDL block describing `[va, va + len)` with `flags`: the header `IoAllocateMdl`
/// fills. Returns it with its layout and the number of pages it spans.
fn new_mdl(va: usize, len: u32, flags: i16) -> Option<(*mut MDL, Layout, usize)> {
    let pages = span_pages(va, len as usize);
    let layout = layout(pages)?;
    // SAFETY: Non-zero size. The layout has MDL's alignment, so the cast is aligned.
    #[allow(clippy::cast_ptr_alignment)]
    let mdl = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<MDL>();
    if mdl.is_null() {
        return None;
    }
    // SAFETY: A fresh zeroed MDL block.
    unsafe {
        (*mdl).Size = i16::try_from(layout.size()).unwrap_or(i16::MAX);
        (*mdl).MdlFlags = flags;
        (*mdl).StartVa = std::ptr::with_exposed_provenance_mut(va - va % PAGE_SIZE);
        (*mdl).ByteOffset = u32::try_from(va % PAGE_SIZE).unwrap_or_default();
        (*mdl).ByteCount = len;
    }
    Some((mdl, layout, pages))
}

/// Fills the PFN array after `mdl`'s header: one frame per page from `StartVa` (locked
/// pages; the frame number is the model's own, the page's address over the page size).
fn fill_pfns(mdl: *mut MDL, pages: usize) {
    // SAFETY: A live MDL with `pages` PFN slots after the header.
    unsafe {
        let pfns = mdl.add(1).cast::<usize>();
        for page in 0..pages {
            pfns.add(page)
                .write((*mdl).StartVa.expose_provenance() / PAGE_SIZE + page);
        }
    }
}

/// `MmBuildMdlForNonPagedPool` (IRQL <= `DISPATCH_LEVEL`): the memory must be non-paged pool.
///
/// # Safety
/// `mdl` must come from `IoAllocateMdl`.
#[unsafe(export_name = "MmBuildMdlForNonPagedPool")]
pub(crate) unsafe extern "system" fn mm_build_mdl_for_non_paged_pool(mdl: *mut MDL) {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("MmBuildMdlForNonPagedPool", DISPATCH_LEVEL);
    let addr = mdl.expose_provenance();
    let Some(pages) = TABLES.mdls.get(&addr).map(|entry| *entry.value()) else {
        state::violation(
            "MdlUnknown",
            format!("MmBuildMdlForNonPagedPool({addr:#x}) of an unknown MDL"),
        );
        return;
    };
    // SAFETY: A live MDL from io_allocate_mdl.
    let (start, len) = unsafe {
        let start = (*mdl).StartVa.expose_provenance() + (*mdl).ByteOffset as usize;
        (start, (*mdl).ByteCount as usize)
    };
    if !pool::is_live_nonpaged(start, len) {
        state::violation(
            "MdlNotNonPagedPool",
            format!(
                "MmBuildMdlForNonPagedPool over [{start:#x}, +{len}), which is not inside one live non-paged pool block"
            ),
        );
    }
    // SAFETY: A live MDL from io_allocate_mdl.
    unsafe {
        (*mdl).MappedSystemVa = std::ptr::with_exposed_provenance_mut(start);
        (*mdl).MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
    }
    fill_pfns(mdl, pages);
}

/// `MDL_PARTIAL` (wdm.h).
const MDL_PARTIAL: i16 = 0x0010;
/// `MDL_PARTIAL_HAS_BEEN_MAPPED` (wdm.h).
const MDL_PARTIAL_HAS_BEEN_MAPPED: i16 = 0x0020;
/// `MDL_IO_PAGE_READ` (wdm.h).
const MDL_IO_PAGE_READ: i16 = 0x0040;

/// `IoBuildPartialMdl` (IRQL <= `DISPATCH_LEVEL`): makes `target` describe `[va, va + len)`, a
/// range of the buffer `source` describes, with `source`'s pages.
///
/// The rules, from the `IoBuildPartialMdl` page: the range must lie in the source's buffer;
/// the target must be large enough for the pages the range spans ("must be large enough to
/// map the subrange"); a target that was mapped as a partial MDL must be prepared with
/// `MmPrepareMdlForReuse` before it is built again; and the source must describe locked
/// pages (research: "the source must be locked"), as an MDL over non-paged pool does. What
/// the target takes from the source (flags, system address, page numbers) follows `ReactOS`'s
/// `IoBuildPartialMdl`, an independent reading: the source's `MDL_IO_PAGE_READ`,
/// `MDL_SOURCE_IS_NONPAGED_POOL` and `MDL_MAPPED_TO_SYSTEM_VA`, plus `MDL_PARTIAL`; a zero
/// length means the rest of the source.
///
/// # Safety
/// `source` and `target` must be MDLs.
#[unsafe(export_name = "IoBuildPartialMdl")]
pub(crate) unsafe extern "system" fn io_build_partial_mdl(
    source: *const MDL,
    target: *mut MDL,
    virtual_address: *mut c_void,
    length: u32,
) {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoBuildPartialMdl", DISPATCH_LEVEL);
    let source_addr = source.expose_provenance();
    let target_addr = target.expose_provenance();
    let known_source = TABLES.mdls.contains_key(&source_addr) || is_locked_request_mdl(source_addr);
    let Some(target_pages) = TABLES.mdls.get(&target_addr).map(|entry| *entry.value()) else {
        state::violation(
            "PartialMdlTarget",
            format!("IoBuildPartialMdl into {target_addr:#x}, not an MDL from IoAllocateMdl"),
        );
        return;
    };
    if !known_source {
        state::violation(
            "PartialMdlSource",
            format!("IoBuildPartialMdl from {source_addr:#x}, not a live MDL"),
        );
        return;
    }
    // SAFETY: Both are live MDLs (checked above).
    let (source_flags, source_start, source_len, source_mapped, target_flags) = unsafe {
        (
            (*source).MdlFlags,
            (*source).StartVa.expose_provenance() + (*source).ByteOffset as usize,
            (*source).ByteCount as usize,
            (*source).MappedSystemVa.expose_provenance(),
            (*target).MdlFlags,
        )
    };
    if source_flags & (MDL_SOURCE_IS_NONPAGED_POOL | MDL_PAGES_LOCKED) == 0 {
        state::violation(
            "PartialMdlSourceNotLocked",
            format!(
                "IoBuildPartialMdl from {source_addr:#x}, which describes neither locked pages nor non-paged pool"
            ),
        );
        return;
    }
    if target_flags & MDL_PARTIAL_HAS_BEEN_MAPPED != 0 {
        state::violation(
            "PartialMdlReusedMapped",
            format!(
                "IoBuildPartialMdl into {target_addr:#x}, a partial MDL mapped since it was built: MmPrepareMdlForReuse first (IoBuildPartialMdl page)"
            ),
        );
    }
    let start = virtual_address.expose_provenance();
    let offset = start.wrapping_sub(source_start);
    let length = if length == 0 {
        source_len.saturating_sub(offset)
    } else {
        length as usize
    };
    if start < source_start || offset.saturating_add(length) > source_len || length == 0 {
        state::violation(
            "PartialMdlOutsideSource",
            format!(
                "IoBuildPartialMdl of [{start:#x}, +{length}) from {source_addr:#x}, which describes [{source_start:#x}, +{source_len})"
            ),
        );
        return;
    }
    let pages = span_pages(start, length);
    if pages > target_pages {
        state::violation(
            "PartialMdlTooSmall",
            format!(
                "IoBuildPartialMdl of {pages} page(s) into {target_addr:#x}, sized for {target_pages} (IoBuildPartialMdl page: the target must be large enough)"
            ),
        );
        return;
    }
    if TABLES.request_mdls.contains_key(&source_addr) {
        TABLES.partial_sources.insert(target_addr, source_addr);
    } else {
        TABLES.partial_sources.remove(&target_addr);
    }
    let inherited =
        source_flags & (MDL_IO_PAGE_READ | MDL_SOURCE_IS_NONPAGED_POOL | MDL_MAPPED_TO_SYSTEM_VA);
    // SAFETY: A live target with room for `pages` page numbers (checked), and a live source
    // whose page array covers the range (it lies in the source's buffer).
    unsafe {
        (*target).StartVa = std::ptr::with_exposed_provenance_mut(start - start % PAGE_SIZE);
        (*target).ByteOffset = u32::try_from(start % PAGE_SIZE).unwrap_or_default();
        (*target).ByteCount = u32::try_from(length).unwrap_or(u32::MAX);
        #[allow(clippy::cast_possible_truncation)]
        let kept = (*target).MdlFlags & MDL_ALLOCATED_FIXED_SIZE as i16;
        (*target).MdlFlags = kept | inherited | MDL_PARTIAL;
        (*target).MappedSystemVa = if source_mapped == 0 {
            std::ptr::null_mut()
        } else {
            std::ptr::with_exposed_provenance_mut(source_mapped + offset)
        };
        let first_page =
            (start - start % PAGE_SIZE - (*source).StartVa.expose_provenance()) / PAGE_SIZE;
        let from = source.add(1).cast::<usize>().add(first_page);
        let to = target.add(1).cast::<usize>();
        std::ptr::copy_nonoverlapping(from, to, pages);
    }
}

/// Whether `mdl` is the locked MDL of a direct-I/O request the I/O manager has not completed
/// (the model builds those itself; see [`build_locked`]).
fn is_locked_request_mdl(mdl: usize) -> bool {
    TABLES
        .request_mdls
        .get(&mdl)
        .is_some_and(|entry| entry.value().load(Ordering::Acquire))
}

/// `IoFreeMdl` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `mdl` must come from `IoAllocateMdl`.
#[unsafe(export_name = "IoFreeMdl")]
pub(crate) unsafe extern "system" fn io_free_mdl(mdl: *mut MDL) {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoFreeMdl", DISPATCH_LEVEL);
    let addr = mdl.expose_provenance();
    TABLES.partial_sources.remove(&addr);
    let Some(pages) = TABLES.mdls.remove(&addr).map(|entry| *entry.value()) else {
        state::violation(
            "MdlFreeUnknown",
            format!("IoFreeMdl({addr:#x}) of an MDL not allocated (or freed twice)"),
        );
        return;
    };
    if let Some(layout) = layout(pages) {
        // SAFETY: Allocated with this layout, untracked just now, freed once.
        unsafe { std::alloc::dealloc(mdl.cast(), layout) };
    }
}

/// What the stack does to send from an MDL over locked pages that is not mapped
/// (`MmGetSystemAddressForMdlSafe`, as `IoBuildPartialMdl`'s page says of a partial over an
/// unmapped source): maps it, setting `MDL_MAPPED_TO_SYSTEM_VA`, and on a partial MDL
/// `MDL_PARTIAL_HAS_BEEN_MAPPED` too (which is why `MmPrepareMdlForReuse` must come before the
/// partial is built again; `IoFreeMdl` releases the mapping itself). The model's system
/// address is the caller's own.
fn map_locked(mdl: *mut MDL) {
    // SAFETY: A live MDL over locked pages (checked by the caller); the driver does not touch
    // an MDL it has handed to the provider.
    unsafe {
        if (*mdl).MdlFlags & MDL_MAPPED_TO_SYSTEM_VA != 0 {
            return;
        }
        (*mdl).MappedSystemVa = (*mdl).StartVa.byte_add((*mdl).ByteOffset as usize);
        let partial = if (*mdl).MdlFlags & MDL_PARTIAL != 0 {
            MDL_PARTIAL_HAS_BEEN_MAPPED
        } else {
            0
        };
        (*mdl).MdlFlags |= MDL_MAPPED_TO_SYSTEM_VA | partial;
    }
}

/// Why a `WSK_BUF` could not be read. The provider fails the IRP with
/// `STATUS_INVALID_PARAMETER`; the violation is already recorded.
#[derive(Debug)]
pub(crate) struct BadBuffer;

/// The memory a `WSK_BUF` describes, as the stack would send it: every MDL must be live,
/// locked/mapped, and describe live non-paged memory. Returns the driver's own memory, one
/// slice per MDL (what `sendmsg` gathers from), not a copy.
///
/// # Safety
/// The slices are the driver's memory, which it keeps valid until the IRP completes (the
/// `WskSendTo` contract; the residency checks here catch a driver that does not): they must
/// not be used after the IRP that carried `buffer` is completed. `'a` ends before then.
pub(crate) unsafe fn read_wsk_buf<'a>(
    buffer: &WSK_BUF,
    call: &str,
    out: &mut impl Extend<IoSlice<'a>>,
) -> Result<usize, BadBuffer> {
    let mut taken = 0;
    let mut skip = buffer.Offset as usize;
    let mut mdl = buffer.Mdl;
    // A chain longer than the live MDLs goes round in a cycle.
    let live_mdls = TABLES.mdls.len();
    let mut walked = 0;
    while taken < buffer.Length {
        let addr = mdl.expose_provenance();
        if mdl.is_null() {
            state::violation(
                "WskBufTooShort",
                format!(
                    "{call}: WSK_BUF Length {} but its MDL chain describes only {taken} bytes after Offset",
                    buffer.Length,
                ),
            );
            return Err(BadBuffer);
        }
        walked += 1;
        let source = request_source(addr);
        if walked > live_mdls.saturating_add(1)
            || !(TABLES.mdls.contains_key(&addr) || source == Some(addr))
        {
            state::violation(
                "MdlFreedInFlight",
                format!(
                    "{call}: MDL {addr:#x} in the WSK_BUF chain is not a live MDL (freed before the IRP completed, or a cycle)"
                ),
            );
            return Err(BadBuffer);
        }
        if let Some(source) = source {
            // A caller's buffer under the I/O manager's lock (direct I/O): read as the stack
            // reads it, mapped to a system address, while the request is pending.
            if !is_locked_request_mdl(source) {
                state::violation(
                    "DirectIoUnlockedInFlight",
                    format!(
                        "{call}: MDL {addr:#x} describes the buffer of a direct-I/O request that was completed (its pages unlocked, its MDL freed) before this IRP completed (MdlAfterReqCompletedIoctl)"
                    ),
                );
                return Err(BadBuffer);
            }
            map_locked(mdl);
        }
        // SAFETY: A live MDL.
        let (flags, mapped, count, next) = unsafe {
            (
                (*mdl).MdlFlags,
                (*mdl).MappedSystemVa,
                (*mdl).ByteCount as usize,
                (*mdl).Next,
            )
        };
        let locked = flags & MDL_SOURCE_IS_NONPAGED_POOL != 0
            || (flags & MDL_PAGES_LOCKED != 0 && flags & MDL_MAPPED_TO_SYSTEM_VA != 0)
            || (source.is_some() && flags & MDL_MAPPED_TO_SYSTEM_VA != 0);
        if !locked {
            state::violation(
                "MdlNotLocked",
                format!(
                    "{call}: MDL {addr:#x} is neither built for non-paged pool nor locked and mapped"
                ),
            );
            return Err(BadBuffer);
        }
        let start = mapped.expose_provenance();
        if source.is_none() && !pool::is_live_nonpaged(start, count) {
            state::violation(
                "MdlBufferFreed",
                format!(
                    "{call}: MDL {addr:#x} describes [{start:#x}, +{count}), no longer live non-paged pool: the buffer was freed before the IRP completed"
                ),
            );
            return Err(BadBuffer);
        }
        let take_from = skip.min(count);
        skip -= take_from;
        let wanted = (buffer.Length - taken).min(count - take_from);
        if wanted != 0 {
            let from = mapped.cast::<u8>().cast_const().wrapping_add(take_from);
            // SAFETY: `[from, from + wanted)` is inside `[start, start + count)`, live pool
            // memory (checked just above) that the driver keeps until the IRP completes (the
            // caller's contract bounds `'a`).
            let bytes = unsafe { std::slice::from_raw_parts(from, wanted) };
            out.extend(std::iter::once(IoSlice::new(bytes)));
        }
        taken += wanted;
        mdl = next;
    }
    Ok(taken)
}
