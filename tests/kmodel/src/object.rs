//! Object-manager handles, as far as a front door uses them: `ObOpenObjectByPointer` for a
//! kernel handle to one of its device objects, `ZwSetSecurityObject` to replace the device's
//! DACL through it (what the WDM front door does instead of `IoCreateDeviceSecure`), and
//! `ZwClose`. The new descriptor is what the I/O manager then checks every open against.
//!
//! Checked: `PASSIVE_LEVEL` for all three ("Callers of ... must be running at IRQL =
//! `PASSIVE_LEVEL`"); a kernel handle (`OBJ_KERNEL_HANDLE`, `KernelMode`), since a driver's
//! handle in the System process without it is reachable from user mode (Verifier's security
//! checks); the `WRITE_DAC` access `DACL_SECURITY_INFORMATION` needs; a handle closed once
//! (closing an unknown kernel handle is bugcheck 0x93 `INVALID_KERNEL_HANDLE`), and none left
//! open at shutdown (`KernelHandleLeaked`).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use windows_sys::Wdk::Foundation::ACCESS_STATE;
use windows_sys::Win32::Foundation::{
    HANDLE, NTSTATUS, STATUS_ACCESS_DENIED, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER,
    STATUS_INVALID_SECURITY_DESCR, STATUS_OBJECT_TYPE_MISMATCH, STATUS_SUCCESS,
};

use crate::irql::{self, PASSIVE_LEVEL};
use crate::security::SecurityDescriptor;
use crate::{iomgr, state};

/// `OBJ_KERNEL_HANDLE`, `WRITE_DAC`, `DACL_SECURITY_INFORMATION`, `KernelMode`.
const OBJ_KERNEL_HANDLE: u32 = 0x200;
const WRITE_DAC: u32 = 0x0004_0000;
const DACL_SECURITY_INFORMATION: u32 = 4;
const KERNEL_MODE: i8 = 0;
/// Kernel handles have the sign bit set on Windows; the model's do too.
const KERNEL_HANDLE_BASE: usize = 0xFFFF_FFFF_8000_0000;

/// One open kernel handle: the device it refers to and the access it was opened with.
struct HandleRecord {
    device: usize,
    access: u32,
}

#[derive(Default)]
struct Handles {
    open: HashMap<usize, HandleRecord>,
    next: usize,
}

static HANDLES: LazyLock<Mutex<Handles>> = LazyLock::new(Mutex::default);

fn handles() -> MutexGuard<'static, Handles> {
    HANDLES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets every handle (a new machine).
pub(crate) fn reset() {
    *handles() = Handles::default();
}

/// Reports the handles still open at shutdown.
///
/// The `ZwClose` page: a driver must close every handle it opens as soon as it no longer needs
/// it. Windows reports nothing when one is left open; the report at shutdown is the model's.
pub(crate) fn check_closed() {
    let open = handles().open.len();
    if open > 0 {
        state::violation(
            "KernelHandleLeaked",
            format!(
                "{open} kernel handle(s) from ObOpenObjectByPointer never closed (ZwClose page: close every handle the driver opens)"
            ),
        );
    }
}

/// `ObOpenObjectByPointer`, for device objects.
///
/// # Safety
/// The DDI's contract: `object` a referenced object, `handle` writable.
#[unsafe(export_name = "ObOpenObjectByPointer")]
pub(crate) unsafe extern "system" fn ob_open_object_by_pointer(
    object: *const core::ffi::c_void,
    attributes: u32,
    _access_state: *const ACCESS_STATE,
    desired_access: u32,
    _object_type: isize,
    access_mode: i8,
    handle: *mut HANDLE,
) -> NTSTATUS {
    irql::require_at_most("ObOpenObjectByPointer", PASSIVE_LEVEL);
    if attributes & OBJ_KERNEL_HANDLE == 0 || access_mode != KERNEL_MODE {
        state::violation(
            "KernelHandleExpected",
            format!(
                "ObOpenObjectByPointer with attributes {attributes:#x}, mode {access_mode}: a driver's handle must be a kernel handle (OBJ_KERNEL_HANDLE, KernelMode)"
            ),
        );
        return STATUS_INVALID_PARAMETER;
    }
    let device = object.expose_provenance();
    if !iomgr::is_device(device) {
        state::bugcheck(
            "ObNotModelled",
            &format!("ObOpenObjectByPointer on {device:#x}, which is not a device object"),
        );
    }
    let mut table = handles();
    table.next = table.next.wrapping_add(4);
    let value = KERNEL_HANDLE_BASE | table.next;
    table.open.insert(
        value,
        HandleRecord {
            device,
            access: desired_access,
        },
    );
    // SAFETY: `handle` is writable (the DDI's contract).
    unsafe { handle.write(std::ptr::with_exposed_provenance_mut(value)) };
    STATUS_SUCCESS
}

/// `ZwSetSecurityObject`, for a device's DACL.
///
/// # Safety
/// The DDI's contract: `descriptor` a valid security descriptor.
#[unsafe(export_name = "ZwSetSecurityObject")]
pub(crate) unsafe extern "system" fn zw_set_security_object(
    handle: HANDLE,
    information: u32,
    descriptor: *const core::ffi::c_void,
) -> NTSTATUS {
    irql::require_at_most("ZwSetSecurityObject", PASSIVE_LEVEL);
    // The refusals below are the `ZwSetSecurityObject` page's return codes:
    // STATUS_INVALID_HANDLE (not a valid handle), STATUS_ACCESS_DENIED (the handle lacks the
    // access, WRITE_DAC for the DACL), STATUS_INVALID_SECURITY_DESCR (not a valid descriptor;
    // the model also gives it for a layout it does not model) and STATUS_OBJECT_TYPE_MISMATCH
    // (not a handle of the expected type).
    let (device, access) = {
        let table = handles();
        let Some(record) = table.open.get(&handle.expose_provenance()) else {
            return STATUS_INVALID_HANDLE;
        };
        (record.device, record.access)
    };
    if information != DACL_SECURITY_INFORMATION {
        state::bugcheck(
            "ObNotModelled",
            &format!(
                "ZwSetSecurityObject with SecurityInformation {information:#x} (only the DACL is modelled)"
            ),
        );
    }
    if access & WRITE_DAC == 0 {
        return STATUS_ACCESS_DENIED;
    }
    // SAFETY: A valid descriptor (the DDI's contract); its extent is read from its own header.
    let Some(len) = (unsafe { self_relative_len(descriptor.cast()) }) else {
        return STATUS_INVALID_SECURITY_DESCR;
    };
    // SAFETY: `len` bytes, the header and the DACL the header points to, are the descriptor's.
    let bytes = unsafe { std::slice::from_raw_parts(descriptor.cast::<u8>(), len) };
    let Some(parsed) = SecurityDescriptor::parse_self_relative(bytes) else {
        return STATUS_INVALID_SECURITY_DESCR;
    };
    if iomgr::set_device_security(device, parsed) {
        STATUS_SUCCESS
    } else {
        STATUS_OBJECT_TYPE_MISMATCH
    }
}

/// The extent of a self-relative descriptor with a DACL only: its DACL's offset plus the
/// DACL's `AclSize` (winnt.h: `SECURITY_DESCRIPTOR_RELATIVE`, 20 bytes with the DACL offset at
/// 16; `ACL`, with `AclSize` at 2). `None` for anything else (not modelled).
///
/// # Safety
/// `descriptor` must point to a valid security descriptor.
unsafe fn self_relative_len(descriptor: *const u8) -> Option<usize> {
    // SAFETY: Every descriptor has at least the 20-byte header (the caller's guarantee).
    let header = unsafe { std::slice::from_raw_parts(descriptor, 20) };
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let control = u16::from_le_bytes([header[2], header[3]]);
    // Self-relative (SE_SELF_RELATIVE), no owner, group or SACL.
    if control & 0x8000 == 0 || word(4) != 0 || word(8) != 0 || word(12) != 0 {
        return None;
    }
    let dacl = usize::try_from(word(16)).ok()?;
    if dacl < 20 {
        return None;
    }
    // SAFETY: A self-relative descriptor's DACL offset points to its ACL header.
    let acl = unsafe { std::slice::from_raw_parts(descriptor.add(dacl), 8) };
    Some(dacl + usize::from(u16::from_le_bytes([acl[2], acl[3]])))
}

/// `ZwClose`, for the handles above.
///
/// # Safety
/// The DDI's contract.
#[unsafe(export_name = "ZwClose")]
pub(crate) unsafe extern "system" fn zw_close(handle: HANDLE) -> NTSTATUS {
    irql::require_at_most("ZwClose", PASSIVE_LEVEL);
    if handles().open.remove(&handle.expose_provenance()).is_some() {
        STATUS_SUCCESS
    } else {
        state::bugcheck(
            "INVALID_KERNEL_HANDLE",
            &format!("ZwClose({handle:p}): not an open kernel handle (bugcheck 0x93)"),
        )
    }
}

#[cfg(test)]
mod tests {
    /// The exports have exactly the front door's declared signatures (the two function items
    /// only unify if their types are identical).
    #[test]
    fn exports_match_the_front_doors_declarations() {
        macro_rules! same {
            ($declared:path, $exported:path) => {
                let _ = if true { $declared } else { $exported };
            };
        }
        use wskudp_front::security::nt;
        same!(nt::ZwSetSecurityObject, super::zw_set_security_object);
        same!(nt::ZwClose, super::zw_close);
        same!(
            windows_sys::Wdk::Storage::FileSystem::ObOpenObjectByPointer,
            super::ob_open_object_by_pointer
        );
    }
}
