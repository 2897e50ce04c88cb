//! The WDM front door's device security, from ntoskrnl's own exports.
//!
//! It is what `IoCreateDeviceSecure` with `SDDL_DEVOBJ_SYS_ALL_ADM_ALL` gives a device:
//! `IoCreateDeviceSecure` lives in `wdmsec.lib`, a WDK static library the WDK-less build
//! cannot link.
//!
//! [`DEVICE_DESCRIPTOR`] is that SDDL, `D:P(A;;GA;;;SY)(A;;GA;;;BA)`, as a constant
//! self-relative security descriptor (winnt.h layouts): a protected DACL allowing
//! `GENERIC_ALL` to SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544), and nothing to
//! anyone else. [`restrict_to_administrators`] applies it with `ZwSetSecurityObject`
//! ("the security descriptor can be in absolute or self-relative form") on a kernel handle
//! `ObOpenObjectByPointer` opens to the device.

use core::ffi::c_void;

use windows_sys::Wdk::Foundation::DEVICE_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::ObOpenObjectByPointer;
use windows_sys::Win32::Foundation::{GENERIC_ALL, HANDLE, NTSTATUS, OBJ_KERNEL_HANDLE};
use windows_sys::Win32::Security::{
    ACE_HEADER, ACL, ACL_REVISION, DACL_SECURITY_INFORMATION, SE_DACL_PRESENT, SE_DACL_PROTECTED,
    SE_SELF_RELATIVE, SECURITY_DESCRIPTOR_RELATIVE, SECURITY_NT_AUTHORITY,
};

// windows-sys declares these two (Wdk_Storage_FileSystem) as ntdll.dll imports, which a driver
// cannot have; ntoskrnl.exe exports both (ntifs.h). This crate's rlib links before
// windows-sys', so these declarations win (tests/harness/tests/driver_image.rs checks it).
#[allow(
    missing_docs,
    clippy::missing_safety_doc,
    reason = "kernel functions, documented in ntifs.h"
)]
pub mod nt {
    use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS};

    windows_link::link!("ntoskrnl.exe" "system" fn ZwSetSecurityObject(handle : HANDLE, securityinformation : u32, securitydescriptor : *const core::ffi::c_void) -> NTSTATUS);
    windows_link::link!("ntoskrnl.exe" "system" fn ZwClose(handle : HANDLE) -> NTSTATUS);
}

/// `WRITE_DAC` (winnt.h).
const WRITE_DAC: u32 = 0x0004_0000;
/// `KernelMode` (`KPROCESSOR_MODE`).
const KERNEL_MODE: i8 = 0;
/// `SECURITY_DESCRIPTOR_REVISION`, `SID_REVISION`, `ACCESS_ALLOWED_ACE_TYPE` (winnt.h).
const SECURITY_DESCRIPTOR_REVISION: u8 = 1;
const SID_REVISION: u8 = 1;
const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
/// `SECURITY_LOCAL_SYSTEM_RID`, `SECURITY_BUILTIN_DOMAIN_RID`, `DOMAIN_ALIAS_RID_ADMINS`.
const LOCAL_SYSTEM_RID: u32 = 18;
const BUILTIN_DOMAIN_RID: u32 = 32;
const ALIAS_RID_ADMINS: u32 = 544;

/// The size of a SID with `n` subauthorities: revision, count, 6-byte authority, `n` RIDs.
#[allow(
    clippy::arithmetic_side_effects,
    reason = "compile-time only, for n <= 2"
)]
const fn sid_len(n: usize) -> usize {
    8 + 4 * n
}
/// The size of an `ACCESS_ALLOWED_ACE` for such a SID: header, mask, SID.
#[allow(
    clippy::arithmetic_side_effects,
    reason = "compile-time only, for n <= 2"
)]
const fn ace_len(n: usize) -> usize {
    size_of::<ACE_HEADER>() + 4 + sid_len(n)
}
const HEADER_LEN: usize = size_of::<SECURITY_DESCRIPTOR_RELATIVE>();
const ACL_LEN: usize = size_of::<ACL>() + ace_len(1) + ace_len(2);
/// The size of [`DEVICE_DESCRIPTOR`].
pub const DESCRIPTOR_LEN: usize = HEADER_LEN + ACL_LEN;

const _: () = {
    assert!(HEADER_LEN == 20 && size_of::<ACL>() == 8 && size_of::<ACE_HEADER>() == 4);
    assert!(DESCRIPTOR_LEN == 72 && ACL_LEN <= u16::MAX as usize);
};

/// A self-relative security descriptor, aligned as the kernel reads it.
#[repr(C, align(4))]
pub struct Descriptor(pub [u8; DESCRIPTOR_LEN]);

/// `D:P(A;;GA;;;SY)(A;;GA;;;BA)` (`SDDL_DEVOBJ_SYS_ALL_ADM_ALL`) in binary, self-relative.
pub static DEVICE_DESCRIPTOR: Descriptor = Descriptor(build());

/// Writes `value` little-endian at `at`; returns the next offset. Compile time only, where an
/// out-of-range index is a build error.
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "compile-time only, over a fixed-size buffer"
)]
const fn put(out: &mut [u8; DESCRIPTOR_LEN], at: usize, value: &[u8]) -> usize {
    let mut i = 0;
    while i < value.len() {
        out[at + i] = value[i];
        i += 1;
    }
    at + value.len()
}

/// Writes an `ACCESS_ALLOWED_ACE` granting `GENERIC_ALL` to the NT-authority SID with `rids`.
#[allow(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::indexing_slicing,
    reason = "compile-time only; sizes checked above"
)]
const fn put_ace(out: &mut [u8; DESCRIPTOR_LEN], mut at: usize, rids: &[u32]) -> usize {
    at = put(out, at, &[ACCESS_ALLOWED_ACE_TYPE, 0]);
    at = put(out, at, &(ace_len(rids.len()) as u16).to_le_bytes());
    at = put(out, at, &GENERIC_ALL.to_le_bytes());
    at = put(out, at, &[SID_REVISION, rids.len() as u8]);
    at = put(out, at, &SECURITY_NT_AUTHORITY.Value);
    let mut i = 0;
    while i < rids.len() {
        at = put(out, at, &rids[i].to_le_bytes());
        i += 1;
    }
    at
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "compile-time only; sizes checked above"
)]
const fn build() -> [u8; DESCRIPTOR_LEN] {
    let mut out = [0_u8; DESCRIPTOR_LEN];
    // SECURITY_DESCRIPTOR_RELATIVE: revision, Sbz1, Control, then the offsets of Owner, Group
    // and Sacl (none: 0) and of the DACL, which follows the header.
    let mut at = put(&mut out, 0, &[SECURITY_DESCRIPTOR_REVISION, 0]);
    let control = SE_DACL_PRESENT | SE_DACL_PROTECTED | SE_SELF_RELATIVE;
    at = put(&mut out, at, &control.to_le_bytes());
    at = put(&mut out, at, &[0; 12]);
    at = put(&mut out, at, &(HEADER_LEN as u32).to_le_bytes());
    // ACL: revision, Sbz1, AclSize, AceCount, Sbz2.
    at = put(&mut out, at, &[ACL_REVISION as u8, 0]);
    at = put(&mut out, at, &(ACL_LEN as u16).to_le_bytes());
    at = put(&mut out, at, &2_u16.to_le_bytes());
    at = put(&mut out, at, &[0, 0]);
    at = put_ace(&mut out, at, &[LOCAL_SYSTEM_RID]);
    at = put_ace(&mut out, at, &[BUILTIN_DOMAIN_RID, ALIAS_RID_ADMINS]);
    assert!(at == DESCRIPTOR_LEN);
    out
}

/// Replaces `device`'s DACL with [`DEVICE_DESCRIPTOR`]'s: only SYSTEM and Administrators
/// may open it. Call before the device is reachable (its symbolic link, the end of
/// `DriverEntry`).
///
/// IRQL: `PASSIVE_LEVEL` (`ObOpenObjectByPointer`, `ZwSetSecurityObject`).
///
/// # Safety
/// `device` must be a live device object of this driver.
pub(crate) unsafe fn restrict_to_administrators(device: *mut DEVICE_OBJECT) -> NTSTATUS {
    let mut handle: HANDLE = core::ptr::null_mut();
    let status;
    // SAFETY: 1. `device` is a live object (caller's guarantee); 2. no access state; 3. a
    // kernel handle (OBJ_KERNEL_HANDLE) opened in KernelMode, where the object type may be
    // omitted and no access check is made; 4. `handle` is writable; 5. PASSIVE_LEVEL.
    unsafe {
        status = ObOpenObjectByPointer(
            device.cast::<c_void>().cast_const(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null(),
            WRITE_DAC,
            0,
            KERNEL_MODE,
            &raw mut handle,
        );
    }
    if status < 0 {
        return status;
    }
    let status;
    // SAFETY: `handle` was opened with WRITE_DAC above; the descriptor is a valid
    // self-relative SECURITY_DESCRIPTOR the kernel only reads (and captures).
    unsafe {
        status = nt::ZwSetSecurityObject(
            handle,
            DACL_SECURITY_INFORMATION,
            DEVICE_DESCRIPTOR.0.as_ptr().cast(),
        );
    }
    // Closing a kernel handle this code opened cannot fail in a way worth reporting over the
    // status of the change itself.
    // SAFETY: `handle` is the kernel handle opened above, closed once.
    let _ = unsafe { nt::ZwClose(handle) };
    status
}
