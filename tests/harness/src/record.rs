//! A record of the machine a run happened on, in `info` and every JSON output.
//!
//! So that runs on different Windows builds can be compared: the OS build and revision (UBR),
//! and the file versions of `tcpip.sys` and `netio.sys`, the WSK provider's modules. (The
//! provider's WSK version is in `info`, from the driver.) Elsewhere: the OS family only.

use serde_json::{Value, json};

/// What the record holds; `None` where it could not be read (the JSON says `null`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostRecord {
    /// `windows`, `linux`, ...
    pub os: &'static str,
    /// `CurrentBuildNumber`.
    pub build: Option<u32>,
    /// `UBR`, the update build revision.
    pub revision: Option<u32>,
    /// `tcpip.sys`'s file version, `a.b.c.d`.
    pub tcpip: Option<String>,
    /// `netio.sys`'s file version.
    pub netio: Option<String>,
}

impl HostRecord {
    /// Reads it from this machine.
    #[must_use]
    pub fn collect() -> Self {
        #[cfg(windows)]
        {
            windows::collect()
        }
        #[cfg(not(windows))]
        {
            Self {
                os: std::env::consts::OS,
                ..Self::default()
            }
        }
    }

    /// The JSON form (`"host"` in every output).
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "os": self.os,
            "build": self.build,
            "revision": self.revision,
            "tcpip_sys": self.tcpip,
            "netio_sys": self.netio,
        })
    }

    /// One line for the text output.
    #[must_use]
    pub fn text(&self) -> String {
        let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_owned());
        self.build.map_or_else(
            || format!("host: {}", self.os),
            |build| {
                format!(
                    "host: {} build {build}.{}, tcpip.sys {}, netio.sys {}",
                    self.os,
                    or_unknown(self.revision.map(|r| r.to_string())),
                    or_unknown(self.tcpip.clone()),
                    or_unknown(self.netio.clone()),
                )
            },
        )
    }
}

#[cfg(windows)]
mod windows {
    use std::os::windows::ffi::OsStrExt;

    use windows_sys::Win32::Storage::FileSystem::{
        GetFileVersionInfoSizeW, GetFileVersionInfoW, VS_FIXEDFILEINFO, VerQueryValueW,
    };
    use windows_sys::Win32::System::Registry::{
        HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD, RRF_RT_REG_SZ, RegGetValueW,
    };
    use windows_sys::Win32::System::SystemInformation::GetSystemDirectoryW;

    use super::HostRecord;

    fn wide(text: &str) -> Vec<u16> {
        std::ffi::OsStr::new(text)
            .encode_wide()
            .chain([0])
            .collect()
    }

    const CURRENT_VERSION: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";

    fn registry_dword(name: &str) -> Option<u32> {
        let (key, value) = (wide(CURRENT_VERSION), wide(name));
        let mut data = 0_u32;
        let mut size = 4_u32;
        // SAFETY: NUL-terminated names; `data` holds the 4 bytes `size` says.
        let status = unsafe {
            RegGetValueW(
                HKEY_LOCAL_MACHINE,
                key.as_ptr(),
                value.as_ptr(),
                RRF_RT_REG_DWORD,
                std::ptr::null_mut(),
                (&raw mut data).cast(),
                &raw mut size,
            )
        };
        (status == 0).then_some(data)
    }

    fn registry_string(name: &str) -> Option<String> {
        let (key, value) = (wide(CURRENT_VERSION), wide(name));
        let mut data = [0_u16; 64];
        let mut size = u32::try_from(size_of_val(&data)).ok()?;
        // SAFETY: NUL-terminated names; `data` holds the `size` bytes given.
        let status = unsafe {
            RegGetValueW(
                HKEY_LOCAL_MACHINE,
                key.as_ptr(),
                value.as_ptr(),
                RRF_RT_REG_SZ,
                std::ptr::null_mut(),
                data.as_mut_ptr().cast(),
                &raw mut size,
            )
        };
        if status != 0 {
            return None;
        }
        let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
        Some(String::from_utf16_lossy(&data[..end]))
    }

    /// `a.b.c.d` of a file in `System32\drivers`.
    fn driver_version(file: &str) -> Option<String> {
        let mut directory = [0_u16; 260];
        let length = u32::try_from(directory.len()).ok()?;
        // SAFETY: `directory` holds `length` UTF-16 units.
        let written = unsafe { GetSystemDirectoryW(directory.as_mut_ptr(), length) };
        let written = usize::try_from(written).ok()?;
        if written == 0 || written >= directory.len() {
            return None;
        }
        let path = format!(
            r"{}\drivers\{file}",
            String::from_utf16_lossy(&directory[..written])
        );
        let path = wide(&path);
        // SAFETY: A NUL-terminated path; the handle argument is ignored and may be null.
        let size = unsafe { GetFileVersionInfoSizeW(path.as_ptr(), std::ptr::null_mut()) };
        if size == 0 {
            return None;
        }
        let mut block = vec![0_u8; usize::try_from(size).ok()?];
        // SAFETY: `block` holds the `size` bytes given.
        let ok = unsafe { GetFileVersionInfoW(path.as_ptr(), 0, size, block.as_mut_ptr().cast()) };
        if ok == 0 {
            return None;
        }
        let root = wide("\\");
        let mut info: *mut core::ffi::c_void = std::ptr::null_mut();
        let mut info_len = 0_u32;
        // SAFETY: `block` is the version resource just read; "\" asks for its fixed part.
        let ok = unsafe {
            VerQueryValueW(
                block.as_ptr().cast(),
                root.as_ptr(),
                &raw mut info,
                &raw mut info_len,
            )
        };
        if ok == 0 || info.is_null() || (info_len as usize) < size_of::<VS_FIXEDFILEINFO>() {
            return None;
        }
        // SAFETY: VerQueryValueW pointed `info` at a VS_FIXEDFILEINFO inside `block`, which
        // is alive; it may be unaligned, so it is read unaligned.
        let fixed = unsafe { info.cast::<VS_FIXEDFILEINFO>().read_unaligned() };
        Some(format!(
            "{}.{}.{}.{}",
            fixed.dwFileVersionMS >> 16,
            fixed.dwFileVersionMS & 0xFFFF,
            fixed.dwFileVersionLS >> 16,
            fixed.dwFileVersionLS & 0xFFFF
        ))
    }

    pub(super) fn collect() -> HostRecord {
        HostRecord {
            os: "windows",
            build: registry_string("CurrentBuildNumber").and_then(|b| b.parse().ok()),
            revision: registry_dword("UBR"),
            tcpip: driver_version("tcpip.sys"),
            netio: driver_version("netio.sys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HostRecord;

    #[test]
    fn json_and_text_name_what_was_read() {
        let record = HostRecord {
            os: "windows",
            build: Some(26100),
            revision: Some(4061),
            tcpip: Some("10.0.26100.4061".into()),
            netio: None,
        };
        let json = record.to_json();
        assert_eq!(json["build"], 26100);
        assert_eq!(json["revision"], 4061);
        assert_eq!(json["tcpip_sys"], "10.0.26100.4061");
        assert!(json["netio_sys"].is_null());
        assert_eq!(
            record.text(),
            "host: windows build 26100.4061, tcpip.sys 10.0.26100.4061, netio.sys unknown"
        );
        let here = HostRecord::collect();
        assert_eq!(here.os, std::env::consts::OS);
    }
}
