//! Checks the PE images `tests/build-wdm.sh` links on Linux, x64 and ARM64: what Windows needs
//! to load each as a kernel driver, and that it imports exactly the kernel functions wskudp
//! declares and the release build calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use object::pe::{
    IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE, IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY,
    IMAGE_DLLCHARACTERISTICS_NX_COMPAT, IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_ARM64,
    IMAGE_NT_OPTIONAL_HDR64_MAGIC, IMAGE_SCN_MEM_EXECUTE, IMAGE_SCN_MEM_WRITE,
    IMAGE_SUBSYSTEM_NATIVE,
};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::{LittleEndian as LE, Object};

/// What the WDM front door imports itself, on top of core's `REQUIRED_SYMBOLS`.
const FRONT_DOOR_IMPORTS: &[(&str, &str)] = &[
    // Device and symbolic link, created in DriverEntry and deleted at unload.
    ("ntoskrnl.exe", "IoCreateDevice"),
    ("ntoskrnl.exe", "IoCreateSymbolicLink"),
    ("ntoskrnl.exe", "IoDeleteDevice"),
    ("ntoskrnl.exe", "IoDeleteSymbolicLink"),
    // The admin-only descriptor set on the device (IoCreateDeviceSecure's work without
    // wdmsec.lib): a kernel handle to it, its DACL replaced, the handle closed.
    ("ntoskrnl.exe", "ObOpenObjectByPointer"),
    ("ntoskrnl.exe", "ZwSetSecurityObject"),
    ("ntoskrnl.exe", "ZwClose"),
    // Completing the I/O manager's IRPs, and releasing the cancel spin lock in their cancel
    // routine.
    ("ntoskrnl.exe", "IofCompleteRequest"),
    ("ntoskrnl.exe", "IoReleaseCancelSpinLock"),
    // The panic handler (unreachable: see NOT_IMPORTED).
    ("ntoskrnl.exe", "KeBugCheckEx"),
    // The compiler's memory intrinsics (there is no CRT in a driver).
    ("ntoskrnl.exe", "memcpy"),
    ("ntoskrnl.exe", "memmove"),
    ("ntoskrnl.exe", "memset"),
    ("ntoskrnl.exe", "memcmp"),
];

/// Declared imports (core's `REQUIRED_SYMBOLS` or [`FRONT_DOOR_IMPORTS`]) a release image does
/// not import, per architecture, each with the reason; every other declared one is imported,
/// and nothing else is. A change in what the optimizer keeps shows here as a failure to
/// explain, never as an unnoticed import.
const NOT_IMPORTED: &[(&str, &[(&str, &str)])] =
    &[("amd64", OPTIMIZED_OUT), ("arm64", OPTIMIZED_OUT)];

/// What both architectures' release images leave out, and why.
const OPTIMIZED_OUT: &[(&str, &str)] = &[
    (
        "KeGetCurrentIrql",
        "called only by paged_code!'s debug_assert, which a release build drops",
    ),
    (
        "KeBugCheckEx",
        "only the panic handler calls it, and no panic is reachable: the optimizer removes it",
    ),
    (
        "memmove",
        "declared for the compiler, which emits no overlapping copy in this code",
    ),
    (
        "memcmp",
        "declared for the compiler, which emits no memory comparison in this code",
    ),
];

/// The images `tests/build-wdm.sh` builds: (stampinf's arch name, PE machine).
const ARCHES: [(&str, u16); 2] = [
    ("amd64", IMAGE_FILE_MACHINE_AMD64),
    ("arm64", IMAGE_FILE_MACHINE_ARM64),
];

/// The image of `arch`, or the one `WSKUDP_SYS_<ARCH>` names (e.g. a build from elsewhere).
fn image(arch: &str) -> Vec<u8> {
    let path = std::env::var_os(format!("WSKUDP_SYS_{}", arch.to_ascii_uppercase())).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/wskudp-wdm")
                .join(arch)
                .join("wskudp.sys")
        },
        PathBuf::from,
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build it first with tests/build-wdm.sh",
            path.display()
        )
    })
}

/// The PE checksum (as `CheckSumMappedFile` computes it): 16-bit one's-complement-style sum
/// of the file with the checksum field taken as zero, plus the file length.
fn pe_checksum(data: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in data.chunks(2).enumerate() {
        let offset = i * 2;
        if offset == checksum_offset || offset == checksum_offset + 2 {
            continue;
        }
        let word = u16::from_le_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u64::from(word);
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum = (sum & 0xFFFF) + (sum >> 16);
    u32::try_from(sum).unwrap() + u32::try_from(data.len()).unwrap()
}

/// The RVA of export `name`. Read by hand: lld may place the export directory at an
/// unaligned address (fine for the loader, refused by `object`'s aligned reads).
fn export_rva(file: &PeFile64<'_>, data: &[u8], name: &str) -> Option<u32> {
    let sections = file.section_table();
    let at = |rva: u32, len: u32| -> Option<&[u8]> {
        let (offset, size) = sections.pe_file_range_at(rva)?;
        (size >= len).then(|| &data[offset as usize..(offset + len) as usize])
    };
    let u32_at = |rva: u32| at(rva, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let u16_at = |rva: u32| at(rva, 2).map(|b| u16::from_le_bytes(b.try_into().unwrap()));
    let directory = file.data_directory(object::pe::IMAGE_DIRECTORY_ENTRY_EXPORT)?;
    let base = directory.virtual_address.get(LE);
    let names = u32_at(base + 24)?;
    let functions = u32_at(base + 28)?;
    let name_table = u32_at(base + 32)?;
    let ordinals = u32_at(base + 36)?;
    (0..names).find_map(|i| {
        let name_rva = u32_at(name_table + 4 * i)?;
        let found = at(name_rva, u32::try_from(name.len()).ok()? + 1)?;
        if &found[..name.len()] != name.as_bytes() || found[name.len()] != 0 {
            return None;
        }
        let ordinal = u32::from(u16_at(ordinals + 2 * i)?);
        u32_at(functions + 4 * ordinal)
    })
}

#[test]
fn images_are_loadable_kernel_drivers() {
    for (arch, machine) in ARCHES {
        check_loadable(arch, machine);
    }
}

fn check_loadable(arch: &str, machine: u16) {
    let data = image(arch);
    let file = PeFile64::parse(&*data).expect("a PE32+ image");
    let nt = file.nt_headers();
    let header = nt.file_header();
    let optional = nt.optional_header();
    assert_eq!(header.machine.get(LE), machine, "{arch}: machine");
    assert_eq!(
        optional.magic(),
        IMAGE_NT_OPTIONAL_HDR64_MAGIC,
        "{arch}: PE32+"
    );
    assert_eq!(
        optional.subsystem(),
        IMAGE_SUBSYSTEM_NATIVE,
        "{arch}: subsystem must be NATIVE"
    );
    let characteristics = optional.dll_characteristics();
    for (flag, name) in [
        (IMAGE_DLLCHARACTERISTICS_NX_COMPAT, "NX_COMPAT"),
        (IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE, "DYNAMIC_BASE"),
        (IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY, "FORCE_INTEGRITY"),
    ] {
        assert!(
            characteristics & flag != 0,
            "{arch}: DllCharacteristics {characteristics:#x} lacks {name}"
        );
    }

    // The entry point is DriverEntry.
    let driver_entry = export_rva(&file, &data, "DriverEntry")
        .unwrap_or_else(|| panic!("{arch}: DriverEntry is not exported"));
    assert_eq!(
        optional.address_of_entry_point(),
        driver_entry,
        "{arch}: the entry point is not DriverEntry"
    );

    // The checksum is set and right (the loader checks it for drivers).
    let checksum_offset =
        usize::try_from(file.dos_header().nt_headers_offset()).unwrap() + 4 + 20 + 64;
    let stored = u32::from_le_bytes(
        data[checksum_offset..checksum_offset + 4]
            .try_into()
            .unwrap(),
    );
    assert_eq!(stored, optional.check_sum(), "checksum field offset");
    assert_ne!(stored, 0, "{arch}: the PE checksum is not set");
    assert_eq!(
        stored,
        pe_checksum(&data, checksum_offset),
        "{arch}: the PE checksum is wrong"
    );

    // No section is both writable and executable.
    for section in file.section_table().iter() {
        let flags = section.characteristics.get(LE);
        let name = String::from_utf8_lossy(section.raw_name());
        assert!(
            flags & IMAGE_SCN_MEM_WRITE == 0 || flags & IMAGE_SCN_MEM_EXECUTE == 0,
            "{arch}: section {name} is writable and executable"
        );
    }
}

#[test]
fn images_import_exactly_the_declared_kernel_functions() {
    for (arch, _) in ARCHES {
        check_imports(arch);
    }
}

/// Module (lower case) to imported function names.
type Imports = BTreeMap<String, BTreeSet<String>>;

/// What `arch`'s image must import: every declared function but the ones [`NOT_IMPORTED`]
/// explains, by module.
fn expected_imports(arch: &str) -> Imports {
    let (_, left_out) = NOT_IMPORTED
        .iter()
        .find(|(listed, _)| *listed == arch)
        .unwrap_or_else(|| panic!("{arch}: no NOT_IMPORTED entry"));
    let declared: Vec<&(&str, &str)> = wskudp_core::ddi::REQUIRED_SYMBOLS
        .iter()
        .chain(FRONT_DOOR_IMPORTS)
        .collect();
    for (name, _) in *left_out {
        assert!(
            declared.iter().any(|(_, declared)| declared == name),
            "{arch}: NOT_IMPORTED names {name}, which nothing declares"
        );
    }
    let mut expected = Imports::new();
    for (module, name) in declared {
        if !left_out.iter().any(|(out, _)| out == name) {
            expected
                .entry(module.to_ascii_lowercase())
                .or_default()
                .insert((*name).to_owned());
        }
    }
    expected
}

fn check_imports(arch: &str) {
    let data = image(arch);
    let file = PeFile64::parse(&*data).expect("a PE32+ image");
    let mut seen = Imports::new();
    for import in &file.imports().expect("import table") {
        let module = String::from_utf8_lossy(import.library()).to_ascii_lowercase();
        let name = String::from_utf8_lossy(import.name()).into_owned();
        assert!(
            ["ntoskrnl.exe", "hal.dll", "netio.sys"].contains(&module.as_str()),
            "{arch}: {name} is imported from {module}: a driver may import only from the kernel (ntoskrnl, the HAL, NETIO)"
        );
        assert!(
            seen.entry(module.clone()).or_default().insert(name.clone()),
            "{arch}: {module}!{name} is imported twice"
        );
    }
    let expected = expected_imports(arch);
    for module in expected.keys().chain(seen.keys()) {
        let (want, got) = (expected.get(module), seen.get(module));
        let empty = BTreeSet::new();
        let (want, got) = (want.unwrap_or(&empty), got.unwrap_or(&empty));
        let unexpected: Vec<_> = got.difference(want).collect();
        let missing: Vec<_> = want.difference(got).collect();
        assert!(
            unexpected.is_empty() && missing.is_empty(),
            "{arch}: {module}: imported but not expected {unexpected:?} (declare it in core's \
             REQUIRED_SYMBOLS or FRONT_DOOR_IMPORTS, or explain it); expected but not imported \
             {missing:?} (explain it in NOT_IMPORTED)"
        );
    }
}
