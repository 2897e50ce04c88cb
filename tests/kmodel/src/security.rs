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

    /// Parses a self-relative `SECURITY_DESCRIPTOR` (winnt.h layouts) whose DACL holds only
    /// access-allowed ACEs for well-known SIDs, into the same form as [`Self::parse`];
    /// `None` outside that (where the model gives `STATUS_INVALID_SECURITY_DESCR`).
    pub(crate) fn parse_self_relative(bytes: &[u8]) -> Option<Self> {
        const SE_DACL_PRESENT: u16 = 0x0004;
        const SE_SELF_RELATIVE: u16 = 0x8000;
        const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
        let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
        // SECURITY_DESCRIPTOR_RELATIVE: Revision 1, Control, Owner, Group, Sacl, Dacl.
        let control = u16_at(2)?;
        if *bytes.first()? != 1
            || control & (SE_DACL_PRESENT | SE_SELF_RELATIVE)
                != (SE_DACL_PRESENT | SE_SELF_RELATIVE)
        {
            return None;
        }
        let dacl = usize::try_from(u32_at(16)?).ok()?;
        // ACL: AclRevision 2 (or 4), AclSize, AceCount; ACEs follow the 8-byte header.
        if !matches!(*bytes.get(dacl)?, 2 | 4) {
            return None;
        }
        let acl_end = dacl + usize::from(u16_at(dacl + 2)?);
        let count = u16_at(dacl + 4)?;
        let mut at = dacl + 8;
        let mut aces = Vec::new();
        for _ in 0..count {
            // ACCESS_ALLOWED_ACE: AceType, AceFlags, AceSize, Mask, then the SID.
            let size = usize::from(u16_at(at + 2)?);
            if *bytes.get(at)? != ACCESS_ALLOWED_ACE_TYPE || size < 16 || at + size > acl_end {
                return None;
            }
            let mask = u32_at(at + 4)?;
            let sid = sid_alias(bytes.get(at + 8..at + size)?)?;
            let generic_all = mask & 0x1000_0000 != 0;
            aces.push(Ace {
                sid,
                read: generic_all || mask & 0x8000_0000 != 0,
                write: generic_all || mask & 0x4000_0000 != 0,
            });
            at += size;
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

/// The SDDL alias of a well-known SID in binary form (`S-1-5-18` is `SY`, ...), or its
/// `S-...` string; `None` if it is malformed.
fn sid_alias(sid: &[u8]) -> Option<String> {
    let count = usize::from(*sid.get(1)?);
    if *sid.first()? != 1 || sid.len() < 8 + 4 * count {
        return None;
    }
    let authority = sid
        .get(2..8)?
        .iter()
        .fold(0_u64, |acc, b| acc << 8 | u64::from(*b));
    let rids: Vec<u32> = (0..count)
        .map(|i| {
            u32::from_le_bytes([
                sid[8 + 4 * i],
                sid[9 + 4 * i],
                sid[10 + 4 * i],
                sid[11 + 4 * i],
            ])
        })
        .collect();
    Some(
        match (authority, rids.as_slice()) {
            (1, [0]) => "WD",
            (5, [11]) => "AU",
            (5, [18]) => "SY",
            (5, [32, 544]) => "BA",
            (5, [32, 545]) => "BU",
            _ => {
                let mut text = format!("S-1-{authority}");
                for rid in &rids {
                    text.push('-');
                    text.push_str(&rid.to_string());
                }
                return Some(text);
            }
        }
        .to_owned(),
    )
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

    /// The WDM front door's binary descriptor is the KMDF front door's SDDL, read by this
    /// parser written from winnt.h's layouts.
    #[test]
    fn the_wdm_descriptor_is_the_sddl() {
        let binary =
            SecurityDescriptor::parse_self_relative(&wskudp_front::security::DEVICE_DESCRIPTOR.0);
        assert_eq!(binary, SecurityDescriptor::parse(wskudp_front::DEVICE_SDDL));
        assert!(binary.is_some());
        // A truncated descriptor is refused, not read past.
        let bytes = &wskudp_front::security::DEVICE_DESCRIPTOR.0;
        assert_eq!(SecurityDescriptor::parse_self_relative(&bytes[..40]), None);
    }
}
