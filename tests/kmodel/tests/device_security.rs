//! The WDM front door's device admits SYSTEM and Administrators only, as the KMDF front
//! door's control device does: it applies `SDDL_DEVOBJ_SYS_ALL_ADM_ALL` itself, from ntoskrnl's
//! exports, since `IoCreateDeviceSecure` (wdmsec.lib) cannot be linked without the WDK. Without
//! it the device would keep the default ACL, which lets every user open it.

use windows_sys::Win32::Foundation::STATUS_ACCESS_DENIED;
use wskudp_kmodel::iomgr::{self, EntryKind};
use wskudp_kmodel::{Access, Caller, Config, Machine};

#[test]
fn a_user_cannot_open_the_wdm_device_and_an_administrator_can() {
    let machine = Machine::boot(Config::default());
    let driver = iomgr::load("wskudp", wskudp_front::wdm::driver_entry, EntryKind::Direct)
        .expect("DriverEntry");
    assert_eq!(
        iomgr::open(
            wskudp_abi::USER_DEVICE_PATH,
            Caller::User,
            Access::READ_WRITE
        )
        .err(),
        Some(STATUS_ACCESS_DENIED),
        "a standard user opened the WDM device"
    );
    // Read access alone (QUERY_INFO's) is refused too: the DACL grants users nothing.
    let read_only = Access {
        read: true,
        write: false,
    };
    assert_eq!(
        iomgr::open(wskudp_abi::USER_DEVICE_PATH, Caller::User, read_only).err(),
        Some(STATUS_ACCESS_DENIED)
    );
    let handle = iomgr::open(
        wskudp_abi::USER_DEVICE_PATH,
        Caller::Administrator,
        Access::READ_WRITE,
    )
    .expect("an administrator opens the device");
    handle.close();
    driver.unload().expect("unload");
    let report = machine.shutdown();
    assert!(report.is_clean(), "{report}");
}

/// The kernel handle the front door opens to set the descriptor is a kernel handle, closed.
#[test]
fn the_security_handle_is_a_closed_kernel_handle() {
    let machine = Machine::boot(Config::default());
    let driver = iomgr::load("wskudp", wskudp_front::wdm::driver_entry, EntryKind::Direct)
        .expect("DriverEntry");
    driver.unload().expect("unload");
    let report = machine.shutdown();
    assert!(
        !report
            .violations
            .iter()
            .any(|v| v.rule.starts_with("KernelHandle")),
        "{report}"
    );
}
