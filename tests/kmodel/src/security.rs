//! Device object security: the subset of SDDL `IoCreateDeviceSecure` accepts ("SDDL for
//! Device Objects": `D:P` followed by `(A;;Access;;;SID)` entries), evaluated for the two
//! callers the harness plays, an elevated administrator and a standard user.
//!
//! A device created by `IoCreateDevice` without a descriptor gets the default one ("Controlling
//! Device Access": administrators `GENERIC_ALL`, everyone `GENERIC_READ | GENERIC_WRITE |
//! GENERIC_EXECUTE`); a KMDF control device always gets the SDDL given to
//! `WdfControlDeviceInitAllocate` (KMDF creates it with `IoCreateDeviceSecure`).

/// Who opens the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An elevated member of Administrators (SIDs `BA`, `WD`, `AU`, `BU`).
    Administrator,
    /// A standard user (SIDs `WD`, `AU`, `BU`).
    User,
}

impl Caller {
    fn has(self, sid: &str) -> bool {
        match sid {
            "WD" | "AU" | "BU" => true,
            "BA" => self == Self::Administrator,
            _ => false,
        }
    }
}

/// The access a handle asks for (`GENERIC_READ`, `GENERIC_WRITE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Read access (`FILE_READ_DATA`, which `FILE_READ_ACCESS` IOCTLs need).
    pub read: bool,
    /// Write access (`FILE_WRITE_DATA`, which `FILE_WRITE_ACCESS` IOCTLs need).
    pub write: bool,
}

impl Access {
    /// `GENERIC_READ | GENERIC_WRITE`, what the CLI opens with.
    pub const READ_WRITE: Self = Self {
        read: true,
        write: true,
    };
}

/// One allow entry: a SID and the generic rights it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ace {
    sid: String,
    read: bool,
    write: bool,
}

/// A parsed device descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecurityDescriptor {
    aces: Vec<Ace>,
}

impl SecurityDescriptor {
    /// Parses the device-object SDDL subset; `None` if the string is outside it (where
    /// `IoCreateDeviceSecure` fails).
    pub(crate) fn parse(sddl: &str) -> Option<Self> {
        let mut rest = sddl.strip_prefix("D:P")?;
        let mut aces = Vec::new();
        while !rest.is_empty() {
            let inner = rest.strip_prefix('(')?;
            let end = inner.find(')')?;
            let fields: Vec<&str> = inner[..end].split(';').collect();
            let [kind, "", rights, "", "", sid] = fields.as_slice() else {
                return None;
            };
            if *kind != "A" || sid.len() != 2 {
                return None;
            }
            let mut ace = Ace {
                sid: (*sid).to_string(),
                read: false,
                write: false,
            };
            let codes = rights.as_bytes().chunks(2);
            for code in codes {
                match code {
                    b"GA" => {
                        ace.read = true;
                        ace.write = true;
                    }
                    b"GR" => ace.read = true,
                    b"GW" => ace.write = true,
                    b"GX" | b"RC" | b"SD" | b"WD" | b"WO" => {}
                    _ => return None,
                }
            }
            aces.push(ace);
            rest = &inner[end + 1..];
        }
        Some(Self { aces })
    }

    /// The descriptor a device created without one gets.
    pub(crate) fn default_device() -> Self {
        Self::parse("D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GRGWGX;;;WD)")
            .unwrap_or(Self { aces: Vec::new() })
    }

    /// Whether `caller` may open the device with `access`.
    pub(crate) fn grants(&self, caller: Caller, access: Access) -> bool {
        let allowed = |want: fn(&Ace) -> bool| {
            self.aces
                .iter()
                .any(|ace| caller.has(&ace.sid) && want(ace))
        };
        (!access.read || allowed(|ace| ace.read)) && (!access.write || allowed(|ace| ace.write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_only_descriptor_refuses_users() {
        let sd = SecurityDescriptor::parse("D:P(A;;GA;;;SY)(A;;GA;;;BA)").unwrap();
        assert!(sd.grants(Caller::Administrator, Access::READ_WRITE));
        assert!(!sd.grants(Caller::User, Access::READ_WRITE));
        let default = SecurityDescriptor::default_device();
        assert!(default.grants(Caller::User, Access::READ_WRITE));
        assert_eq!(SecurityDescriptor::parse("O:BA"), None);
        assert_eq!(SecurityDescriptor::parse("D:P(A;;ZZ;;;BA)"), None);
    }
}
