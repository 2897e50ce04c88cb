//! The `NTSTATUS` values wskudp produces or passes through, and their names.
//!
//! The values come from `windows-sys`; this module only adds `NT_SUCCESS`-style predicates
//! and a name table so user mode can print `STATUS_INVALID_HANDLE` instead of `0xC0000008`.

pub use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_ADDRESS_ALREADY_EXISTS, STATUS_BUFFER_TOO_SMALL,
    STATUS_CANCELLED, STATUS_CONNECTION_REFUSED, STATUS_DEVICE_BUSY, STATUS_DEVICE_NOT_READY,
    STATUS_FILE_CLOSED, STATUS_FILE_FORCED_CLOSED, STATUS_HOST_UNREACHABLE,
    STATUS_INFO_LENGTH_MISMATCH, STATUS_INSUFFICIENT_RESOURCES, STATUS_INTERNAL_ERROR,
    STATUS_INVALID_ADDRESS, STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_BUFFER_SIZE,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER, STATUS_IO_TIMEOUT, STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_NETWORK_UNREACHABLE, STATUS_NO_SUCH_DEVICE, STATUS_NOINTERFACE, STATUS_NOT_SUPPORTED,
    STATUS_OBJECT_NAME_NOT_FOUND, STATUS_PENDING, STATUS_REVISION_MISMATCH, STATUS_SUCCESS,
    STATUS_TOO_MANY_OPENED_FILES, STATUS_UNSUCCESSFUL,
};

/// `NT_SUCCESS`: success and informational values (severity 0 or 1).
#[must_use]
pub const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

/// `NT_ERROR`: error severity (the two top bits set). On such a status the I/O manager copies
/// no output back to a `METHOD_BUFFERED` caller.
#[must_use]
#[allow(
    clippy::cast_sign_loss,
    reason = "NTSTATUS severity is read as raw bits"
)]
pub const fn nt_error(status: NTSTATUS) -> bool {
    (status as u32) >> 30 == 3
}

const NAMES: &[(NTSTATUS, &str)] = &[
    (STATUS_SUCCESS, "STATUS_SUCCESS"),
    (STATUS_PENDING, "STATUS_PENDING"),
    (STATUS_UNSUCCESSFUL, "STATUS_UNSUCCESSFUL"),
    (STATUS_INFO_LENGTH_MISMATCH, "STATUS_INFO_LENGTH_MISMATCH"),
    (STATUS_INVALID_HANDLE, "STATUS_INVALID_HANDLE"),
    (STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER"),
    (
        STATUS_INVALID_DEVICE_REQUEST,
        "STATUS_INVALID_DEVICE_REQUEST",
    ),
    (
        STATUS_MORE_PROCESSING_REQUIRED,
        "STATUS_MORE_PROCESSING_REQUIRED",
    ),
    (STATUS_BUFFER_TOO_SMALL, "STATUS_BUFFER_TOO_SMALL"),
    (STATUS_ACCESS_DENIED, "STATUS_ACCESS_DENIED"),
    (STATUS_REVISION_MISMATCH, "STATUS_REVISION_MISMATCH"),
    (
        STATUS_INSUFFICIENT_RESOURCES,
        "STATUS_INSUFFICIENT_RESOURCES",
    ),
    (STATUS_NOT_SUPPORTED, "STATUS_NOT_SUPPORTED"),
    (STATUS_TOO_MANY_OPENED_FILES, "STATUS_TOO_MANY_OPENED_FILES"),
    (STATUS_CANCELLED, "STATUS_CANCELLED"),
    (STATUS_DEVICE_BUSY, "STATUS_DEVICE_BUSY"),
    (STATUS_INVALID_ADDRESS, "STATUS_INVALID_ADDRESS"),
    (STATUS_IO_TIMEOUT, "STATUS_IO_TIMEOUT"),
    (STATUS_INTERNAL_ERROR, "STATUS_INTERNAL_ERROR"),
    (STATUS_DEVICE_NOT_READY, "STATUS_DEVICE_NOT_READY"),
    (STATUS_INVALID_DEVICE_STATE, "STATUS_INVALID_DEVICE_STATE"),
    (STATUS_INVALID_BUFFER_SIZE, "STATUS_INVALID_BUFFER_SIZE"),
    (
        STATUS_INVALID_ADDRESS_COMPONENT,
        "STATUS_INVALID_ADDRESS_COMPONENT",
    ),
    (
        STATUS_ADDRESS_ALREADY_EXISTS,
        "STATUS_ADDRESS_ALREADY_EXISTS",
    ),
    (STATUS_CONNECTION_REFUSED, "STATUS_CONNECTION_REFUSED"),
    (STATUS_NETWORK_UNREACHABLE, "STATUS_NETWORK_UNREACHABLE"),
    (STATUS_HOST_UNREACHABLE, "STATUS_HOST_UNREACHABLE"),
    (STATUS_NOINTERFACE, "STATUS_NOINTERFACE"),
    (STATUS_FILE_FORCED_CLOSED, "STATUS_FILE_FORCED_CLOSED"),
    (STATUS_FILE_CLOSED, "STATUS_FILE_CLOSED"),
    (STATUS_NO_SUCH_DEVICE, "STATUS_NO_SUCH_DEVICE"),
    (STATUS_OBJECT_NAME_NOT_FOUND, "STATUS_OBJECT_NAME_NOT_FOUND"),
];

/// The symbolic name of a status wskudp knows, e.g. `"STATUS_INVALID_HANDLE"`.
#[must_use]
pub fn status_name(status: NTSTATUS) -> Option<&'static str> {
    NAMES
        .iter()
        .find(|(value, _)| *value == status)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_ntdef() {
        assert!(nt_success(STATUS_SUCCESS));
        assert!(nt_success(STATUS_PENDING));
        assert!(!nt_success(STATUS_INVALID_HANDLE));
        assert!(nt_error(STATUS_INVALID_HANDLE));
        assert!(!nt_error(STATUS_SUCCESS));
        // 0x80000005 STATUS_BUFFER_OVERFLOW is a warning: not success, not error.
        assert!(!nt_error(0x8000_0005_u32.cast_signed()));
    }

    #[test]
    fn names_are_unique_and_found() {
        for (i, (value, name)) in NAMES.iter().enumerate() {
            assert_eq!(status_name(*value), Some(*name));
            assert!(NAMES[i + 1..].iter().all(|(v, n)| v != value && n != name));
        }
        assert_eq!(status_name(0x1234), None);
    }
}
