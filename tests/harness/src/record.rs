//! A record of the machine a run happened on, in `info` and every JSON output.
//!
//! So that runs on different Windows builds can be compared: the OS build and revision (UBR),
//! the file versions of `tcpip.sys` and `netio.sys` (the WSK provider's modules) and each
//! network adapter's USO setting. (What the driver and its provider probe found is the
//! `"driver"` record, from the driver itself.) Elsewhere: the OS family only.

use std::fmt::Write as _;

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
    /// The physical network adapters and those with a USO keyword (`None`: not read here).
    pub nics: Option<Vec<NicRecord>>,
}

/// One network adapter's UDP segmentation offload setting.
///
/// Its standardized INF keywords `*UsoIPv4` / `*UsoIPv6` ("0" off, "1" on) in the adapter's
/// driver key (Learn: "UDP Segmentation Offload (USO)", supported from Windows 10 2004).
/// `None`: the adapter has no such keyword, so the stack never offloads UDP segmentation to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicRecord {
    /// `DriverDesc`, the adapter's description.
    pub name: String,
    /// `*UsoIPv4`.
    pub uso_ipv4: Option<bool>,
    /// `*UsoIPv6`.
    pub uso_ipv6: Option<bool>,
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
            "nics": self.nics.as_ref().map(|nics| {
                nics.iter()
                    .map(|nic| json!({
                        "name": nic.name,
                        "uso_ipv4": nic.uso_ipv4,
                        "uso_ipv6": nic.uso_ipv6,
                    }))
                    .collect::<Vec<_>>()
            }),
        })
    }

    /// One line for the text output.
    #[must_use]
    pub fn text(&self) -> String {
        let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_owned());
        self.build.map_or_else(
            || format!("host: {}", self.os),
            |build| {
                let mut line = format!(
                    "host: {} build {build}.{}, tcpip.sys {}, netio.sys {}",
                    self.os,
                    or_unknown(self.revision.map(|r| r.to_string())),
                    or_unknown(self.tcpip.clone()),
                    or_unknown(self.netio.clone()),
                );
                let uso = |v: Option<bool>| match v {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "none",
                };
                for nic in self.nics.iter().flatten() {
                    let _ = write!(
                        line,
                        "\nNIC {}: USO IPv4 {}, IPv6 {}",
                        nic.name,
                        uso(nic.uso_ipv4),
                        uso(nic.uso_ipv6)
                    );
                }
                line
            },
        )
    }
}

/// This Windows build (`CurrentBuildNumber`), for the receiver's per-build choices: read from
/// the registry once, not at every receiver's bind.
#[cfg(windows)]
pub(crate) fn windows_build() -> Option<u32> {
    static BUILD: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *BUILD.get_or_init(windows::build)
}

#[cfg(windows)]
mod windows {
    use std::os::windows::ffi::OsStrExt;

    use windows_sys::Win32::Storage::FileSystem::{
        GetFileVersionInfoSizeW, GetFileVersionInfoW, VS_FIXEDFILEINFO, VerQueryValueW,
    };
    use windows_sys::Win32::System::Registry::{
        HKEY, HKEY_LOCAL_MACHINE, KEY_READ, RRF_RT_REG_DWORD, RRF_RT_REG_SZ, RegCloseKey,
        RegEnumKeyExW, RegGetValueW, RegOpenKeyExW,
    };
    use windows_sys::Win32::System::SystemInformation::GetSystemDirectoryW;

    use super::{HostRecord, NicRecord};

    fn wide(text: &str) -> Vec<u16> {
        std::ffi::OsStr::new(text)
            .encode_wide()
            .chain([0])
            .collect()
    }

    const CURRENT_VERSION: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";
    /// The network adapter setup class (`GUID_DEVCLASS_NET`): one numbered driver key per
    /// adapter, holding its advanced properties.
    const NET_CLASS: &str =
        r"SYSTEM\CurrentControlSet\Control\Class\{4d36e972-e325-11ce-bfc1-08002be10318}";
    /// `Characteristics` bit of a physical adapter (`NCF_PHYSICAL`, netcfgx.h).
    const NCF_PHYSICAL: u32 = 0x4;

    /// A `REG_DWORD` `name` under `root\key`.
    fn registry_dword(root: HKEY, key: &str, name: &str) -> Option<u32> {
        let (key, value) = (wide(key), wide(name));
        let mut data = 0_u32;
        let mut size = 4_u32;
        // SAFETY: NUL-terminated names; `data` holds the 4 bytes `size` says.
        let status = unsafe {
            RegGetValueW(
                root,
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

    /// A `REG_SZ` `name` under `root\key` (up to 255 characters).
    fn registry_string(root: HKEY, key: &str, name: &str) -> Option<String> {
        let (key, value) = (wide(key), wide(name));
        let mut data = [0_u16; 256];
        let mut size = u32::try_from(size_of_val(&data)).ok()?;
        // SAFETY: NUL-terminated names; `data` holds the `size` bytes given.
        let status = unsafe {
            RegGetValueW(
                root,
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

    /// The physical adapters, and any with a USO keyword, from their driver keys. Keys this
    /// user cannot read (the class key's `Properties`) are passed over.
    fn nics() -> Option<Vec<NicRecord>> {
        let class = wide(NET_CLASS);
        let mut key: HKEY = std::ptr::null_mut();
        // SAFETY: A NUL-terminated path; `key` receives the handle, closed below.
        let status = unsafe {
            RegOpenKeyExW(
                HKEY_LOCAL_MACHINE,
                class.as_ptr(),
                0,
                KEY_READ,
                &raw mut key,
            )
        };
        if status != 0 {
            return None;
        }
        let mut nics = Vec::new();
        for index in 0_u32.. {
            let mut name = [0_u16; 256];
            let mut length = u32::try_from(name.len()).unwrap_or(0);
            // SAFETY: `key` is open; `name` holds `length` UTF-16 units; the optional
            // outputs are null.
            let status = unsafe {
                RegEnumKeyExW(
                    key,
                    index,
                    name.as_mut_ptr(),
                    &raw mut length,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            if status != 0 {
                break; // ERROR_NO_MORE_ITEMS, or a key that cannot be listed.
            }
            let subkey = String::from_utf16_lossy(name.get(..length as usize).unwrap_or(&[]));
            let flag = |keyword: &str| {
                registry_string(key, &subkey, keyword).map(|value| value.trim() == "1")
            };
            let (uso_ipv4, uso_ipv6) = (flag("*UsoIPv4"), flag("*UsoIPv6"));
            let physical = registry_dword(key, &subkey, "Characteristics")
                .is_some_and(|c| c & NCF_PHYSICAL != 0);
            if !physical && uso_ipv4.is_none() && uso_ipv6.is_none() {
                continue;
            }
            nics.push(NicRecord {
                name: registry_string(key, &subkey, "DriverDesc").unwrap_or(subkey),
                uso_ipv4,
                uso_ipv6,
            });
        }
        // SAFETY: `key` was opened above and is closed once.
        unsafe { RegCloseKey(key) };
        Some(nics)
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

    pub(super) fn build() -> Option<u32> {
        registry_string(HKEY_LOCAL_MACHINE, CURRENT_VERSION, "CurrentBuildNumber")
            .and_then(|b| b.parse().ok())
    }

    pub(super) fn collect() -> HostRecord {
        HostRecord {
            os: "windows",
            build: build(),
            revision: registry_dword(HKEY_LOCAL_MACHINE, CURRENT_VERSION, "UBR"),
            tcpip: driver_version("tcpip.sys"),
            netio: driver_version("netio.sys"),
            nics: nics(),
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
            nics: Some(vec![super::NicRecord {
                name: "Microsoft Hyper-V Network Adapter".into(),
                uso_ipv4: Some(true),
                uso_ipv6: None,
            }]),
        };
        let json = record.to_json();
        assert_eq!(json["build"], 26100);
        assert_eq!(json["revision"], 4061);
        assert_eq!(json["tcpip_sys"], "10.0.26100.4061");
        assert!(json["netio_sys"].is_null());
        assert_eq!(json["nics"][0]["uso_ipv4"], true);
        assert!(json["nics"][0]["uso_ipv6"].is_null());
        assert_eq!(
            record.text(),
            "host: windows build 26100.4061, tcpip.sys 10.0.26100.4061, netio.sys unknown\n\
             NIC Microsoft Hyper-V Network Adapter: USO IPv4 on, IPv6 none"
        );
        let here = HostRecord::collect();
        assert_eq!(here.os, std::env::consts::OS);
    }
}
