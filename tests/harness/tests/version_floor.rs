//! One Windows build floor, everywhere it is stated or implied (README "Version floor").
//!
//! The floor is `windows-build-floor` in driver/sys/Cargo.toml. It must be the highest of what
//! the driver needs: its KMDF version, every kernel function the linked `.sys` imports, a
//! primitive INF. And the INF template, the catalog's OS list (Makefile.toml), the VM scripts
//! (tests/windows/common.ps1), the README and the WDK the Windows CI builds with must agree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use object::Object;
use object::read::pe::PeFile64;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first Windows build each KMDF 1.x minor version ships in ("KMDF version history":
/// 1.33 is in Windows 11 21H2, 22000, and Windows Server 2022, 20348).
const KMDF_FIRST_BUILD: &[(u32, u32)] = &[
    (15, 10240),
    (17, 10586),
    (19, 14393),
    (21, 15063),
    (23, 16299),
    (25, 17134),
    (27, 17763),
    (29, 18362),
    (31, 19041),
    (33, 20348),
];

/// The first Windows build a primitive driver INF installs on ("Creating a primitive driver":
/// Windows 10, version 1903).
const PRIMITIVE_INF_BUILD: u32 = 18362;

/// Every kernel function the WDM `.sys` may import, with the first build that exports it;
/// `None`: older than Windows 10 (the functions' documentation pages give the versions).
/// A new import fails this test until its floor is written here.
const IMPORT_FIRST_BUILD: &[(&str, Option<u32>)] = &[
    ("ExAllocatePool2", Some(19041)), // Windows 10, version 2004
    ("ExAcquireRundownProtection", None),
    ("ExAllocateTimer", None), // Windows 8.1, as are ExSetTimer and ExDeleteTimer
    ("ExAcquireSpinLockExclusive", None),
    ("ExAcquireSpinLockShared", None),
    ("ExDeleteTimer", None),
    ("ExFreePoolWithTag", None),
    ("ExInitializeRundownProtection", None),
    ("ExReleaseRundownProtection", None),
    ("ExReleaseSpinLockExclusive", None),
    ("ExReleaseSpinLockShared", None),
    ("ExSetTimer", None),
    ("ExWaitForRundownProtectionRelease", None),
    ("IoAllocateIrp", None),
    ("IoAllocateMdl", None),
    ("IoAllocateWorkItem", None),
    ("IoBuildPartialMdl", None),
    ("IoCancelIrp", None),
    ("IoCreateDevice", None),
    ("IoCreateSymbolicLink", None),
    ("IoDeleteDevice", None),
    ("IoDeleteSymbolicLink", None),
    ("IoFreeIrp", None),
    ("IoFreeMdl", None),
    ("IoFreeWorkItem", None),
    ("IoQueueWorkItem", None),
    ("IoReleaseCancelSpinLock", None),
    ("IoReuseIrp", None),
    ("IoSetCompletionRoutineEx", None),
    ("IofCompleteRequest", None),
    ("KeBugCheckEx", None),
    ("KeGetCurrentIrql", None),
    ("KeInitializeEvent", None),
    ("KeQueryPerformanceCounter", None),
    ("KeSetEvent", None),
    ("KeWaitForSingleObject", None),
    ("MmBuildMdlForNonPagedPool", None),
    ("ObOpenObjectByPointer", None),
    ("WskCaptureProviderNPI", None),
    ("WskDeregister", None),
    ("WskRegister", None),
    ("WskReleaseProviderNPI", None),
    ("ZwClose", None),
    ("ZwSetSecurityObject", None),
    ("memcmp", None),
    ("memcpy", None),
    ("memmove", None),
    ("memset", None),
];

/// inf2cat's OS identifiers the catalog may name, with their build, from the tool's page:
/// `10_CO` is Windows 11 21H2, `ServerFE` Windows Server 2022, `10_NI` 22H2, `10_GE` 24H2.
const INF2CAT_OS_BUILD: &[(&str, u32)] = &[
    ("10_CO_X64", 22000),
    ("10_CO_ARM64", 22000),
    ("ServerFE_X64", 20348),
    ("ServerFE_ARM64", 20348),
    ("10_NI_X64", 22621),
    ("10_NI_ARM64", 22621),
    ("10_GE_X64", 26100),
    ("10_GE_ARM64", 26100),
];

/// The value of `key = <integer>` in the TOML table `table` of `text`.
fn toml_integer(text: &str, table: &str, key: &str) -> Option<u32> {
    let mut in_table = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line == format!("[{table}]");
            continue;
        }
        if in_table
            && let Some((name, value)) = line.split_once('=')
            && name.trim() == key
        {
            return value.split('#').next()?.trim().parse().ok();
        }
    }
    None
}

/// The floor as driver/sys/Cargo.toml states it.
fn declared_floor() -> u32 {
    toml_integer(
        &read("driver/sys/Cargo.toml"),
        "package.metadata.wskudp",
        "windows-build-floor",
    )
    .expect("driver/sys/Cargo.toml: [package.metadata.wskudp] windows-build-floor")
}

#[test]
fn the_floor_is_what_the_driver_needs() {
    let cargo = read("driver/sys/Cargo.toml");
    let table = "package.metadata.wdk.driver-model";
    assert_eq!(toml_integer(&cargo, table, "kmdf-version-major"), Some(1));
    // A minimum below the target lets the driver load on that older KMDF.
    let minor = toml_integer(&cargo, table, "minimum-kmdf-version-minor")
        .or_else(|| toml_integer(&cargo, table, "target-kmdf-version-minor"))
        .expect("driver/sys/Cargo.toml: the KMDF minor version");
    let kmdf_build = KMDF_FIRST_BUILD
        .iter()
        .find(|(m, _)| *m == minor)
        .map_or_else(
            || panic!("KMDF 1.{minor} is not in KMDF_FIRST_BUILD"),
            |(_, build)| *build,
        );

    let mut needs = vec![
        (format!("KMDF 1.{minor}"), kmdf_build),
        ("a primitive driver INF".to_owned(), PRIMITIVE_INF_BUILD),
    ];
    for name in imports() {
        let (_, build) = IMPORT_FIRST_BUILD
            .iter()
            .find(|(known, _)| *known == name)
            .unwrap_or_else(|| {
                panic!("the .sys imports {name}: add the first Windows build that exports it to IMPORT_FIRST_BUILD")
            });
        if let Some(build) = build {
            needs.push((name, *build));
        }
    }
    let (what, highest) = needs.iter().max_by_key(|(_, build)| *build).unwrap();
    assert_eq!(
        declared_floor(),
        *highest,
        "driver/sys/Cargo.toml's windows-build-floor must be the highest build the driver needs: {highest}, for {what} (all: {needs:?})"
    );
}

/// The kernel functions both WDM images import (tests/build-wdm.sh builds them).
fn imports() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for arch in ["amd64", "arm64"] {
        let path = root()
            .join("target/wskudp-wdm")
            .join(arch)
            .join("wskudp.sys");
        let data = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build it first with tests/build-wdm.sh",
                path.display()
            )
        });
        let file = PeFile64::parse(&*data).expect("a PE32+ image");
        for import in file.imports().expect("import table") {
            names.insert(String::from_utf8_lossy(import.name()).into_owned());
        }
    }
    names
}

#[test]
fn the_inf_template_is_a_primitive_inf_with_no_other_floor() {
    let inf = read("driver/sys/wskudp.inx");
    let sections: Vec<String> = inf
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('['))
        .map(|line| line.trim_matches(['[', ']']).to_ascii_lowercase())
        .collect();
    // "Creating a primitive driver": no [Manufacturer], only architecture-decorated
    // [DefaultInstall] sections, no [DefaultUninstall].
    assert!(
        !sections.iter().any(|s| s == "manufacturer"),
        "a primitive INF has no [Manufacturer] section (and so no TargetOSVersion decoration)"
    );
    assert!(sections.iter().any(|s| s == "defaultinstall.nt$arch$"));
    assert!(
        sections
            .iter()
            .any(|s| s == "defaultinstall.nt$arch$.services")
    );
    assert!(
        !sections.iter().any(|s| s == "defaultinstall"),
        "an undecorated [DefaultInstall] makes it a legacy INF"
    );
    assert!(!sections.iter().any(|s| s.starts_with("defaultuninstall")));
    // The KMDF version comes from the Cargo metadata through stampinf, nowhere else.
    assert!(
        inf.lines()
            .any(|line| line.replace(' ', "") == "KmdfLibraryVersion=$KMDFVERSION$"),
        "KmdfLibraryVersion must be stampinf's $KMDFVERSION$"
    );
    // No build number anywhere in a decoration: the floor is stated once, in Cargo.toml.
    for line in inf
        .lines()
        .filter(|line| !line.trim_start().starts_with(';'))
    {
        assert!(
            !line.contains("10.0..."),
            "wskudp.inx decorates a target OS version: {line}"
        );
    }
}

#[test]
fn the_catalog_names_the_floor_os_for_each_architecture() {
    let floor = declared_floor();
    let makefile = read("Makefile.toml");
    for (triple, suffix) in [
        ("x86_64-pc-windows-msvc", "_X64"),
        ("aarch64-pc-windows-msvc", "_ARM64"),
    ] {
        let entry = makefile
            .split(&format!("\"{triple}\" = \""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("Makefile.toml: no inf2cat OS list for {triple}"));
        let builds: Vec<u32> = entry
            .split(',')
            .map(|os| {
                assert!(
                    os.ends_with(suffix),
                    "{triple}: {os} is another architecture"
                );
                INF2CAT_OS_BUILD
                    .iter()
                    .find(|(name, _)| *name == os)
                    .map_or_else(
                        || panic!("{os} is not in INF2CAT_OS_BUILD"),
                        |(_, build)| *build,
                    )
            })
            .collect();
        assert_eq!(
            builds.iter().min(),
            Some(&floor),
            "{triple}: inf2cat /os:{entry} must start at the floor, build {floor}"
        );
    }
}

#[test]
fn scripts_readme_and_ci_state_the_same_floor() {
    let floor = declared_floor();
    let common = read("tests/windows/common.ps1");
    let stated = common
        .lines()
        .find_map(|line| line.trim().strip_prefix("$WindowsBuildFloor = "))
        .and_then(|value| value.trim().parse::<u32>().ok())
        .expect("tests/windows/common.ps1: $WindowsBuildFloor = <build>");
    assert_eq!(
        stated, floor,
        "tests/windows/common.ps1's $WindowsBuildFloor"
    );

    let readme = read("README.md");
    let marker = "Windows build floor: **10.0.";
    let stated = readme
        .split(marker)
        .nth(1)
        .and_then(|rest| rest.split("**").next())
        .and_then(|build| build.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("README.md: no '{marker}<build>**'"));
    assert_eq!(stated, floor, "README.md's Windows build floor");
    assert_eq!(
        readme.matches(marker).count(),
        1,
        "README.md states the floor once"
    );

    // The WDK must have the KMDF 1.33 headers, which came with the Windows 11 (22000) WDK.
    let workflow = read(".github/workflows/windows.yml");
    let wdk = workflow
        .lines()
        .find_map(|line| line.trim().strip_prefix("WDK_VERSION: "))
        .expect(".github/workflows/windows.yml: env WDK_VERSION");
    let build: u32 = wdk
        .trim_matches(['\'', '"'])
        .split('.')
        .nth(2)
        .and_then(|b| b.parse().ok())
        .expect("WDK_VERSION is 10.0.<build>.<revision>");
    assert!(
        build >= 22000,
        "the CI's WDK {wdk} predates the KMDF 1.33 headers"
    );
}

#[test]
fn toml_reader_reads_tables() {
    let text = "[a]\nx = 1\n[b.c]\nx = 2 # note\n";
    assert_eq!(toml_integer(text, "a", "x"), Some(1));
    assert_eq!(toml_integer(text, "b.c", "x"), Some(2));
    assert_eq!(toml_integer(text, "b", "x"), None);
    assert!(Path::new(&root()).join("Cargo.toml").exists());
}
