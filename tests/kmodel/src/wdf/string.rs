//! Strings and the driver's version DDIs: `WdfStringCreate` / `WdfStringGetUnicodeString`
//! (`shared/support/fxstringapi.cpp`), `WdfDriverRetrieveVersionString` and
//! `WdfDriverIsVersionAvailable` (`shared/core/fxdriverapi.cpp:398-547`).
//!
//! A string's buffer is never freed: a `UNICODE_STRING` the driver got from
//! `WdfStringGetUnicodeString` points into it, and a read through it after the string was
//! reassigned or deleted finds poison (0xDDDD) rather than another allocation.

use std::collections::HashMap;

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use wskudp_wdf_decls::{
    BOOLEAN, PCUNICODE_STRING, PUNICODE_STRING, PWDF_DRIVER_GLOBALS,
    PWDF_DRIVER_VERSION_AVAILABLE_PARAMS, PWDF_OBJECT_ATTRIBUTES, WDFDRIVER, WDFSTRING,
};

use super::objects::{Kind, handle_arg, invalid_handle, parent_of, validate_attributes};
use super::{
    above_passive, address, check_globals, framework, null_parameter, pointer, unicode_units,
    violation,
};

/// `sizeof(WDF_DRIVER_VERSION_AVAILABLE_PARAMS)`.
const VERSION_PARAMS_SIZE: u32 = 12;
const _: () = assert!(
    VERSION_PARAMS_SIZE as usize
        == size_of::<wskudp_wdf_decls::WDF_DRIVER_VERSION_AVAILABLE_PARAMS>()
);
/// The framework version the model is: KMDF 1.33 (`__WDF_MAJOR_VERSION` / `__WDF_MINOR_VERSION`
/// come from the build, not the published source; so does the build number, 0 here).
const MAJOR: u32 = 1;
const MINOR: u32 = 33;
/// `pVersionStrVerifier` (`fxdriverapi.cpp:421-425`): the model runs with the verifier on.
const VERSION_STRING: &str = "Kernel Mode Driver Framework (verifier on) version 1.33.0";

/// Live strings: each one's current buffer.
#[derive(Default)]
pub(crate) struct Strings {
    map: HashMap<usize, &'static mut [u16]>,
}

fn leak(text: &[u16]) -> &'static mut [u16] {
    Box::leak(text.to_vec().into_boxed_slice())
}

fn poison(buffer: &mut [u16]) {
    buffer.fill(0xDDDD);
}

/// The UTF-16 of a `UNICODE_STRING` (`FxValidateUnicodeString` first).
fn units(api: &str, text: PCUNICODE_STRING) -> Result<Vec<u16>, NTSTATUS> {
    // SAFETY: Non-null (caller's check), the driver's string.
    let Some(units) = unicode_units(unsafe { &*text }) else {
        violation(
            "WdfMalformedUnicodeString",
            format!("{api}: a malformed UNICODE_STRING"),
        );
        return Err(STATUS_INVALID_PARAMETER);
    };
    Ok(units.to_vec())
}

/// `WdfStringCreate` (`fxstringapi.cpp:36-115`): parented to the driver unless the attributes
/// name a parent.
pub(crate) unsafe extern "C" fn wdf_string_create(
    globals: PWDF_DRIVER_GLOBALS,
    text: PCUNICODE_STRING,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    string_out: *mut WDFSTRING,
) -> NTSTATUS {
    const API: &str = "WdfStringCreate";
    if !check_globals(globals, API) {
        return STATUS_INVALID_PARAMETER;
    }
    let parent = match parent_of(API, attributes) {
        Ok(parent) => parent,
        Err(status) => return status,
    };
    if string_out.is_null() {
        null_parameter(API, "String");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: Non-null out pointer.
    unsafe { string_out.write(std::ptr::null_mut()) };
    if above_passive(API) {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    if let Err(status) = validate_attributes(attributes, true, API) {
        return status;
    }
    let initial = if text.is_null() {
        Vec::new()
    } else {
        match units(API, text) {
            Ok(units) => units,
            Err(status) => return status,
        }
    };
    if crate::faults::should_fail(crate::faults::Site::Wdf) {
        return windows_sys::Win32::Foundation::STATUS_INSUFFICIENT_RESOURCES;
    }
    let handle = {
        let mut fx = framework();
        let parent = parent.or(fx.driver);
        let handle = fx.objects.create(Kind::String, parent, attributes);
        fx.strings.map.insert(handle, leak(&initial));
        handle
    };
    // SAFETY: Non-null out pointer.
    unsafe { string_out.write(pointer(handle)) };
    STATUS_SUCCESS
}

/// `WdfStringGetUnicodeString` (`fxstringapi.cpp:120-151`): a `UNICODE_STRING` describing the
/// string's own buffer (valid while the string lives and is not reassigned).
pub(crate) unsafe extern "C" fn wdf_string_get_unicode_string(
    globals: PWDF_DRIVER_GLOBALS,
    string: WDFSTRING,
    out: PUNICODE_STRING,
) {
    const API: &str = "WdfStringGetUnicodeString";
    let Some(handle) = handle_arg(globals, API, string, Kind::String) else {
        return;
    };
    if out.is_null() {
        null_parameter(API, "UnicodeString");
        return;
    }
    if above_passive(API) {
        return;
    }
    let mut fx = framework();
    let Some(buffer) = fx.strings.map.get_mut(&handle) else {
        return;
    };
    // SAFETY: Non-null out pointer; the buffer is never freed.
    unsafe { out.write(crate::iomgr::unicode_over(buffer)) };
}

/// A string's deletion: its buffer is poisoned (and kept).
pub(crate) fn forget(handle: usize) {
    let buffer = framework().strings.map.remove(&handle);
    if let Some(buffer) = buffer {
        poison(buffer);
    }
}

/// `WdfDriverRetrieveVersionString` (`fxdriverapi.cpp:398-467`): assigns the framework's
/// version text to the string.
pub(crate) unsafe extern "C" fn wdf_driver_retrieve_version_string(
    globals: PWDF_DRIVER_GLOBALS,
    driver: WDFDRIVER,
    string: WDFSTRING,
) -> NTSTATUS {
    const API: &str = "WdfDriverRetrieveVersionString";
    if !check_globals(globals, API) || invalid_handle(API, address(driver), Kind::Driver) {
        return STATUS_INVALID_PARAMETER;
    }
    if string.is_null() {
        null_parameter(API, "String");
        return STATUS_INVALID_PARAMETER;
    }
    if above_passive(API) {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    let handle = address(string);
    if invalid_handle(API, handle, Kind::String) {
        return STATUS_INVALID_PARAMETER;
    }
    let text: Vec<u16> = VERSION_STRING.encode_utf16().collect();
    let mut fx = framework();
    if let Some(old) = fx.strings.map.insert(handle, leak(&text)) {
        poison(old);
    }
    STATUS_SUCCESS
}

/// `WdfDriverIsVersionAvailable` (`fxdriverapi.cpp:472-547`): TRUE for major 1 and any minor up
/// to the framework's.
pub(crate) unsafe extern "C" fn wdf_driver_is_version_available(
    globals: PWDF_DRIVER_GLOBALS,
    driver: WDFDRIVER,
    params: PWDF_DRIVER_VERSION_AVAILABLE_PARAMS,
) -> BOOLEAN {
    const API: &str = "WdfDriverIsVersionAvailable";
    if !check_globals(globals, API) || invalid_handle(API, address(driver), Kind::Driver) {
        return 0;
    }
    if params.is_null() {
        null_parameter(API, "VersionAvailableParams");
        return 0;
    }
    if above_passive(API) {
        return 0;
    }
    // SAFETY: Non-null, the driver's parameters.
    let params = unsafe { *params };
    if params.Size != VERSION_PARAMS_SIZE {
        violation(
            "WdfVersionParamsSize",
            format!(
                "{API}: WDF_DRIVER_VERSION_AVAILABLE_PARAMS.Size is {}, not {VERSION_PARAMS_SIZE}: FALSE",
                params.Size
            ),
        );
        return 0;
    }
    BOOLEAN::from(params.MajorVersion == MAJOR && params.MinorVersion <= MINOR)
}
