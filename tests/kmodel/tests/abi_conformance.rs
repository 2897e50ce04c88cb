//! ABI conformance: every layout, constant and kernel-call signature `wskudp-core` relies on,
//! checked by a C compiler against headers written independently of `windows-sys` and of
//! core's hand-written WSK declarations.
//!
//! On Windows a wrong offset or a swapped dispatch-table slot is a bugcheck, and the kernel
//! model is written from the same Rust declarations, so it cannot catch one. Here the Rust side
//! computes each value (`size_of`, `align_of`, `offset_of!`, constants, core's `cmsg`
//! arithmetic, bytes core encodes), writes one `_Static_assert(<C expression> == <Rust value>)`
//! per fact into a C translation unit, and compiles it with
//! `x86_64-w64-mingw32-gcc -fsyntax-only` (nothing runs on Windows). The sources:
//! - mingw-w64's `ddk/wdm.h` (IRP, `IO_STACK_LOCATION`, MDL, KEVENT, `EX_RUNDOWN_REF`, kernel
//!   constants and imports) and `winsock2.h`/`ws2tcpip.h`/`mswsock.h` (`WSACMSGHDR` and the
//!   `WSA_CMSG_*` macros, `IN(6)_PKTINFO`, `SOCKADDR_IN(6)`, socket constants). `ddk/wdm.h`
//!   and the winsock headers do not compile together (`winbase.h` and `wdm.h` declare the same
//!   types differently), hence separate translation units;
//! - Wine's `include/ddk/wsk.h` (every WSK structure, every dispatch-table slot, its function
//!   type, the WSK constants). Wine's source is not committed: `tests/fetch-wine-wsk.sh` puts
//!   the header in `target/wine-include/ddk/wsk.h`, or `WSKUDP_WINE_WSK_H` names a copy.
//!
//! A missing compiler or header fails the test (never a silent skip). Values absent from both
//! header sets are defined in the generated C from Microsoft's documentation, with the source
//! cited, and gcc prints a note for each.
//!
//! Signatures are checked by calling the C function type (unevaluated, inside `_Generic` or
//! `__typeof__`) with one argument per Rust parameter: a value of the Rust parameter's exact
//! width and signedness, or a null pointer to the Rust pointee. gcc must accept it without
//! pointer-type, pointer/integer, narrowing or width-changing conversions (those warnings are
//! made errors), and the return type must match. Limits: a `void` pointer in Rust accepts any C
//! pointer, constness is not compared (it is not ABI), and for functions with 8- or 16-bit
//! parameters only narrowing is caught, not widening (gcc's width check cannot tell a 16-bit
//! parameter from a promoted one).

use core::ffi::c_void;
use core::mem::offset_of;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::process::Command;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DISPATCHER_HEADER};
use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, AF_UNSPEC, CMSGHDR, IN_PKTINFO, IN6_PKTINFO, IP_ECN, IP_PKTINFO, IP_TOS,
    IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP, IPV6_ECN, IPV6_PKTINFO, IPV6_TCLASS, SOCK_DGRAM,
    SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6, UDP_SEND_MSG_SIZE,
};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;
use windows_sys::Win32::System::Kernel::LIST_ENTRY;
use wskudp_abi::Ecn;
use wskudp_abi::status;
use wskudp_core::cmsg::{self, ControlBuffer, ControlMessage};
use wskudp_core::ddi::nt::{
    self, EX_RUNDOWN_REF, IO_STACK_LOCATION, IRP, KEVENT, MDL, SL_INVOKE_ON_CANCEL,
    SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS, SL_PENDING_RETURNED,
};
use wskudp_core::ddi::wsk::{
    self, WSK_BUF, WSK_BUF_LIST, WSK_CLIENT, WSK_CLIENT_DISPATCH, WSK_CLIENT_NPI,
    WSK_DATAGRAM_INDICATION, WSK_PROVIDER_BASIC_DISPATCH, WSK_PROVIDER_DATAGRAM_DISPATCH,
    WSK_PROVIDER_DISPATCH, WSK_PROVIDER_NPI, WSK_REGISTRATION, WSK_SOCKET,
};
use wskudp_core::sockaddr::SockAddrBuffer;

const GCC: &str = "x86_64-w64-mingw32-gcc";

// ---------------------------------------------------------------------------------------------
// Translation units

/// Declared after the includes of every unit: the signature probes' arguments.
const PROBES: &str = r"
extern int8_t wskudp_i8; extern uint8_t wskudp_u8, wskudp_bool; extern uint16_t wskudp_u16;
extern int32_t wskudp_i32; extern uint32_t wskudp_u32; extern uint64_t wskudp_u64, wskudp_usize;
";

/// The conversions a signature probe must not need, made errors around each probe.
const STRICT: [&str; 5] = [
    "incompatible-pointer-types",
    "int-conversion",
    "conversion",
    "sign-conversion",
    "traditional-conversion",
];

/// mingw-w64's kernel headers.
const WDM_HEAD: &str = r##"
#include <ddk/wdm.h>
#include <stdint.h>
#ifndef POOL_FLAG_NON_PAGED
/* Not in mingw-w64 10's wdm.h (ExAllocatePool2 is newer). Microsoft's value, from
   https://learn.microsoft.com/windows-hardware/drivers/kernel/pool_flags :
   "#define POOL_FLAG_NON_PAGED 0x0000000000000040UI64 // Non paged pool NX" */
#define POOL_FLAG_NON_PAGED 0x0000000000000040ULL
#pragma message "POOL_FLAG_NON_PAGED: not in mingw, checked against Microsoft's value (POOL_FLAGS)"
#endif
"##;

/// mingw-w64's winsock headers.
const WINSOCK_HEAD: &str = r##"
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <stdint.h>
#ifndef UDP_SEND_MSG_SIZE
/* Not in mingw-w64 10's ws2ipdef.h (nor in Wine 8.0's). Microsoft's value: the Windows
   SDK's ws2ipdef.h (10.0.19041 and later) has "#define UDP_SEND_MSG_SIZE 2", the option
   documented at
   https://learn.microsoft.com/windows/win32/winsock/ipproto-udp-socket-options */
#define UDP_SEND_MSG_SIZE 2
#pragma message "UDP_SEND_MSG_SIZE: not in mingw, checked against Microsoft's value (ws2ipdef.h)"
#endif
"##;

/// Wine's `ddk/wsk.h` over mingw-w64's user-mode headers. Wine's header comes with Wine's own
/// DDK; from mingw's user-mode headers it lacks only these names, none of which is a layout:
/// `CMSGHDR` is Microsoft's (and Wine's) alias of `WSACMSGHDR`, the others are only pointed to.
fn wsk_head(wine_wsk_h: &Path) -> String {
    let path = wine_wsk_h.display().to_string();
    assert!(!path.contains(['"', '\n']), "unusable header path {path:?}");
    format!(
        r#"
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <winternl.h>
#include <stdint.h>
typedef WSACMSGHDR CMSGHDR, *PCMSGHDR;
typedef struct _IRP IRP;
typedef struct _MDL *PMDL;
typedef struct _KPROCESS *PEPROCESS;
typedef struct _KTHREAD *PETHREAD;
#include "{path}"
"#
    )
}

/// One C translation unit: a head of includes, then one line per fact.
struct Unit {
    name: &'static str,
    head: String,
    /// Each generated line, with the fact it checks (pragma lines have none).
    lines: Vec<(String, Option<String>)>,
}

impl Unit {
    fn new(name: &'static str, head: &str) -> Self {
        Self {
            name,
            head: format!("{head}{PROBES}"),
            lines: Vec::new(),
        }
    }

    /// `condition` must hold in C; `what` names the fact in gcc's message.
    fn holds(&mut self, what: &str, condition: &str) {
        let what = what.replace(['"', '\\'], "'");
        let line = format!("_Static_assert({condition}, \"{what}\");");
        self.lines.push((line, Some(what)));
    }

    /// The C expression `c` equals the Rust value.
    fn eq(&mut self, what: &str, c: &str, rust: impl Value) {
        let rust = rust.value();
        let literal = if rust < 0 {
            format!("({rust}LL)")
        } else {
            format!("{rust}ULL")
        };
        self.holds(
            &format!("{what}: Rust {rust}, C {c}"),
            &format!("({c}) == {literal}"),
        );
    }

    /// The Rust function type `probe` describes calls like the C function type `c_type`.
    fn signature(&mut self, what: &str, c_type: &str, probe: Probe) {
        let (condition, narrow) = probe(c_type);
        self.pragma("push");
        for warning in STRICT {
            // gcc cannot tell a narrow parameter from a promoted one: see the module docs.
            if !(narrow && warning == "traditional-conversion") {
                self.pragma(&format!("error \"-W{warning}\""));
            }
        }
        self.holds(&format!("{what} has the signature of {c_type}"), &condition);
        self.pragma("pop");
    }

    fn pragma(&mut self, text: &str) {
        self.lines
            .push((format!("#pragma GCC diagnostic {text}"), None));
    }

    /// Compiles the unit; panics with gcc's diagnostics and the failing facts unless every
    /// assertion holds.
    fn check(self) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("abi_conformance");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.c", self.name));
        let first_line = self.head.lines().count() + 1;
        let mut text = self.head.clone();
        for (line, _) in &self.lines {
            writeln!(text, "{line}").unwrap();
        }
        std::fs::write(&path, text).unwrap();
        let facts = self.lines.iter().filter(|(_, what)| what.is_some()).count();

        let output = Command::new(GCC)
            .args(["-std=gnu11", "-fsyntax-only", "-fmax-errors=0"])
            .arg(&path)
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run {GCC} ({error}): install Debian's gcc-mingw-w64-x86-64 \
                     (tests/run-all.sh installs it)"
                )
            });
        let diagnostics = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let prefix = format!("{}:", path.display());
            let mut failing: Vec<&str> = Vec::new();
            for line in diagnostics.lines() {
                let Some(rest) = line.strip_prefix(&prefix) else {
                    continue;
                };
                let number: usize = rest
                    .split(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let what = number
                    .checked_sub(first_line)
                    .and_then(|index| self.lines.get(index))
                    .and_then(|(_, what)| what.as_deref());
                if let Some(what) = what
                    && line.contains("error")
                    && !failing.contains(&what)
                {
                    failing.push(what);
                }
            }
            panic!(
                "{} of {facts} facts of unit `{}` fail against the C headers:\n  {}\n\n\
                 {GCC} diagnostics for {}:\n{diagnostics}",
                failing.len(),
                self.name,
                failing.join("\n  "),
                path.display(),
            );
        }
        if !diagnostics.trim().is_empty() {
            eprintln!("{}: {GCC} says:\n{diagnostics}", self.name);
        }
        eprintln!("{}: {facts} facts hold ({})", self.name, path.display());
    }
}

/// An integer the facts compare, widened losslessly.
trait Value {
    fn value(self) -> i128;
}

macro_rules! value_from {
    ($($ty:ty),*) => {$(
        impl Value for $ty {
            fn value(self) -> i128 {
                i128::from(self)
            }
        }
    )*};
}
value_from!(bool, u8, i8, u16, i16, u32, i32, u64, i64);

impl Value for usize {
    fn value(self) -> i128 {
        i128::try_from(self).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Layouts

/// Size of the pointee, for a field's size through a raw place.
const fn size_of_pointee<T>(_: *const T) -> usize {
    size_of::<T>()
}

/// Size of the field at `path` of `ty` (unions included).
macro_rules! field_size {
    ($ty:ty, $($seg:ident).+) => {{
        let place = core::mem::MaybeUninit::<$ty>::uninit();
        let base = place.as_ptr();
        // SAFETY: only the address of a field of the live local `place` is computed: nothing
        // is read and no reference is created.
        let field = unsafe { &raw const (*base).$($seg).+ };
        size_of_pointee(field)
    }};
}

/// Size and alignment of the Rust type against the C type, and the offset and size of each
/// listed field. A field's C path is its Rust path unless given after `=>` (`windows-sys` names
/// C's anonymous unions and structs `Anonymous*`).
macro_rules! layout {
    (@c_path $rust:ident) => { $rust.as_str() };
    (@c_path $rust:ident, $c:literal) => { $c };
    ($unit:expr, $ty:ty => $c:literal { $($($seg:ident).+ $(=> $c_path:literal)?),* $(,)? }) => {{
        let unit: &mut Unit = $unit;
        let rust = stringify!($ty);
        unit.eq(&format!("size_of::<{rust}>()"), concat!("sizeof(", $c, ")"), size_of::<$ty>());
        unit.eq(&format!("align_of::<{rust}>()"), concat!("_Alignof(", $c, ")"), align_of::<$ty>());
        $(
            let rust_path = [$(stringify!($seg)),+].join(".");
            let c_path = layout!(@c_path rust_path $(, $c_path)?);
            unit.eq(
                &format!("offset_of!({rust}, {rust_path})"),
                &format!("offsetof({}, {c_path})", $c),
                offset_of!($ty, $($seg).+),
            );
            unit.eq(
                &format!("size of {rust}.{rust_path}"),
                &format!("sizeof((({}*)0)->{c_path})", $c),
                field_size!($ty, $($seg).+),
            );
        )*
    }};
}

/// Each constant against the C macro or enumerator named like its last path segment.
macro_rules! constants {
    ($unit:expr, $($($seg:ident)::+),* $(,)?) => {{
        let unit: &mut Unit = $unit;
        $(
            let rust = stringify!($($seg)::+).replace(' ', "");
            let c = rust.rsplit("::").next().unwrap();
            unit.eq(&rust, c, $($seg)::+);
        )*
    }};
}

// ---------------------------------------------------------------------------------------------
// Signatures

/// Builds, for a C function-pointer type, the condition that it accepts a call shaped like the
/// Rust function type, and whether that type has 8- or 16-bit parameters.
type Probe = fn(&str) -> (String, bool);

/// A Rust parameter type, as a C argument expression of the same width and signedness (or a
/// null pointer to the same pointee).
trait Arg {
    const NARROW: bool = false;
    fn probe() -> String;
}

macro_rules! int_arg {
    ($($ty:ty => $probe:literal $(, $narrow:literal)?;)*) => {$(
        impl Arg for $ty {
            $(const NARROW: bool = $narrow;)?
            fn probe() -> String {
                $probe.to_owned()
            }
        }
    )*};
}
int_arg! {
    bool => "wskudp_bool", true;
    i8 => "wskudp_i8", true;
    u8 => "wskudp_u8", true;
    u16 => "wskudp_u16", true;
    i32 => "wskudp_i32";
    u32 => "wskudp_u32";
    u64 => "wskudp_u64";
    usize => "wskudp_usize";
}

/// The C type a Rust pointer parameter points to.
trait Pointee {
    const C: &'static str;
}

macro_rules! pointee {
    ($($ty:ty => $c:literal),* $(,)?) => {$(
        impl Pointee for $ty {
            const C: &'static str = $c;
        }
    )*};
}
pointee! {
    c_void => "void",
    i32 => "LONG",
    i64 => "LARGE_INTEGER",
    u32 => "ULONG",
    usize => "SIZE_T",
    CMSGHDR => "CMSGHDR",
    DEVICE_OBJECT => "DEVICE_OBJECT",
    EX_RUNDOWN_REF => "EX_RUNDOWN_REF",
    IRP => "IRP",
    KEVENT => "KEVENT",
    MDL => "MDL",
    SOCKADDR => "SOCKADDR",
    WSK_BUF => "WSK_BUF",
    WSK_BUF_LIST => "WSK_BUF_LIST",
    WSK_CLIENT => "WSK_CLIENT",
    WSK_CLIENT_NPI => "WSK_CLIENT_NPI",
    WSK_DATAGRAM_INDICATION => "WSK_DATAGRAM_INDICATION",
    WSK_PROVIDER_NPI => "WSK_PROVIDER_NPI",
    WSK_REGISTRATION => "WSK_REGISTRATION",
    WSK_SOCKET => "WSK_SOCKET",
}

impl<T: Pointee> Arg for *mut T {
    fn probe() -> String {
        format!("({}*)0", T::C)
    }
}

impl<T: Pointee> Arg for *const T {
    fn probe() -> String {
        format!("({}*)0", T::C)
    }
}

/// A Rust return type, as a condition on the C call expression's type.
trait Ret {
    fn check(call: &str) -> String;
}

impl Ret for () {
    fn check(call: &str) -> String {
        format!("__builtin_types_compatible_p(__typeof__({call}), void)")
    }
}

/// `NTSTATUS`, `LONG` (`long` on LLP64) or `INT`.
impl Ret for i32 {
    fn check(call: &str) -> String {
        format!("_Generic({call}, int: 1, long: 1, default: 0)")
    }
}

/// `UCHAR`, `KIRQL`.
impl Ret for u8 {
    fn check(call: &str) -> String {
        format!("_Generic({call}, unsigned char: 1, default: 0)")
    }
}

/// `BOOLEAN` (`UCHAR`).
impl Ret for bool {
    fn check(call: &str) -> String {
        u8::check(call)
    }
}

impl<T: Pointee> Ret for *mut T {
    fn check(call: &str) -> String {
        format!(
            "__builtin_types_compatible_p(__typeof__({call}), {}*)",
            T::C
        )
    }
}

/// A Rust function(-pointer) type that can be probed against a C function-pointer type.
trait Signature {
    fn probe(c_type: &str) -> (String, bool);
}

macro_rules! signature {
    ($($arg:ident)*) => {
        impl<R: Ret, $($arg: Arg),*> Signature for unsafe extern "system" fn($($arg),*) -> R {
            fn probe(c_type: &str) -> (String, bool) {
                let args: &[String] = &[$($arg::probe()),*];
                let call = format!("(({c_type})0)({})", args.join(", "));
                (R::check(&call), false $(|| $arg::NARROW)*)
            }
        }
        impl<R: Ret, $($arg: Arg),*> Signature
            for Option<unsafe extern "system" fn($($arg),*) -> R>
        {
            fn probe(c_type: &str) -> (String, bool) {
                <unsafe extern "system" fn($($arg),*) -> R as Signature>::probe(c_type)
            }
        }
    };
}
signature!();
signature!(A);
signature!(A B);
signature!(A B C);
signature!(A B C D);
signature!(A B C D E);
signature!(A B C D E F);
signature!(A B C D E F G);
signature!(A B C D E F G H);
signature!(A B C D E F G H I);
signature!(A B C D E F G H I J);
signature!(A B C D E F G H I J K);

/// The probe of a struct field's function-pointer type.
fn field_probe<T, F: Signature>(_field: fn(&T) -> &F) -> Probe {
    F::probe
}

/// The probe of the type of the function pointer `function` would return. It is never called:
/// the kernel functions are only named, not linked.
fn fn_probe<F: Signature>(_function: impl FnOnce() -> F) -> Probe {
    F::probe
}

/// The function type of each listed dispatch-table slot against the type of the C struct's
/// field of the same name (offsets and sizes are `layout!`'s).
macro_rules! slots {
    ($unit:expr, $ty:ty => $c:literal { $($($seg:ident).+),* $(,)? }) => {{
        let unit: &mut Unit = $unit;
        $(
            let path = [$(stringify!($seg)),+].join(".");
            unit.signature(
                &format!("{}.{path}", stringify!($ty)),
                &format!("__typeof__((({}*)0)->{path})", $c),
                field_probe(|table: &$ty| &table.$($seg).+),
            );
        )*
    }};
}

/// Each listed function's type against the C declaration of the same name.
macro_rules! functions {
    ($unit:expr, $module:ident { $($name:ident: fn($($arg:tt),*)),* $(,)? }) => {{
        let unit: &mut Unit = $unit;
        $(
            unit.signature(
                stringify!($name),
                concat!("__typeof__(&", stringify!($name), ")"),
                fn_probe(|| $module::$name as unsafe extern "system" fn($($arg),*) -> _),
            );
        )*
    }};
}

// ---------------------------------------------------------------------------------------------
// Kernel structures and constants: mingw-w64's ddk/wdm.h

#[test]
fn kernel_declarations_match_mingw_wdm_h() {
    let mut unit = Unit::new("wdm", WDM_HEAD);
    irp_layouts(&mut unit);
    known_windows_sys_defects(&mut unit);
    front_door_layouts(&mut unit);
    kernel_object_layouts(&mut unit);
    kernel_constants(&mut unit);
    kernel_signatures(&mut unit);
    unit.check();
}

fn irp_layouts(unit: &mut Unit) {
    use wskudp_core::ddi::nt::DeviceIoControlParameters as View;

    layout!(unit, IO_STATUS_BLOCK => "IO_STATUS_BLOCK" {
        Anonymous.Status => "Status", Anonymous.Pointer => "Pointer", Information,
    });
    layout!(unit, IRP => "IRP" {
        Type, Size, MdlAddress, Flags, AssociatedIrp, AssociatedIrp.MasterIrp,
        AssociatedIrp.IrpCount, AssociatedIrp.SystemBuffer, ThreadListEntry, IoStatus,
        IoStatus.Anonymous.Status => "IoStatus.Status", IoStatus.Information, RequestorMode,
        PendingReturned, StackCount, CurrentLocation, Cancel, CancelIrql, ApcEnvironment,
        AllocationFlags, Anonymous.UserIosb => "UserIosb", UserEvent, Overlay,
        Overlay.AsynchronousParameters.Anonymous1.UserApcRoutine
            => "Overlay.AsynchronousParameters.UserApcRoutine",
        Overlay.AsynchronousParameters.Anonymous2.UserApcContext
            => "Overlay.AsynchronousParameters.UserApcContext",
        Overlay.AllocationSize, CancelRoutine, UserBuffer, Tail,
        Tail.Overlay.Anonymous1.DeviceQueueEntry => "Tail.Overlay.DeviceQueueEntry",
        Tail.Overlay.Anonymous1.Anonymous.DriverContext => "Tail.Overlay.DriverContext",
        Tail.Overlay.Thread, Tail.Overlay.AuxiliaryBuffer,
        Tail.Overlay.Anonymous2.ListEntry => "Tail.Overlay.ListEntry",
        Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation
            => "Tail.Overlay.CurrentStackLocation",
        Tail.Overlay.Anonymous2.Anonymous.PacketType => "Tail.Overlay.PacketType",
        Tail.Overlay.OriginalFileObject, Tail.Apc, Tail.CompletionKey,
    });
    layout!(unit, IO_STACK_LOCATION => "IO_STACK_LOCATION" {
        MajorFunction, MinorFunction, Flags, Control, Parameters,
        Parameters.DeviceIoControl.OutputBufferLength,
        DeviceObject, FileObject, CompletionRoutine, Context,
    });
    // Core's own view of the DeviceIoControl parameters, which front doors read instead of
    // windows-sys' misaligned one (see `known_windows_sys_defects`).
    let base = offset_of!(IO_STACK_LOCATION, Parameters);
    for (field, rust) in [
        (
            "OutputBufferLength",
            base + offset_of!(View, OutputBufferLength),
        ),
        (
            "InputBufferLength",
            base + offset_of!(View, InputBufferLength),
        ),
        ("IoControlCode", base + offset_of!(View, IoControlCode)),
        (
            "Type3InputBuffer",
            base + offset_of!(View, Type3InputBuffer),
        ),
    ] {
        unit.holds(
            &format!("DeviceIoControlParameters.{field} at IO_STACK_LOCATION offset {rust}"),
            &format!("offsetof(IO_STACK_LOCATION, Parameters.DeviceIoControl.{field}) == {rust}"),
        );
    }
}

/// windows-sys 0.61.2 drops wdm.h's `POINTER_ALIGNMENT` (8 on x64) from three fields of
/// `IO_STACK_LOCATION::Parameters.DeviceIoControl`, so its offsets for them are wrong
/// (microsoft/windows-rs#4404): 12/16/24 instead of C's 16/24/32. Core does not read them; a
/// front door must not either. These facts record the defect and fail once windows-sys is
/// fixed: then move the fields into `irp_layouts`.
fn known_windows_sys_defects(unit: &mut Unit) {
    type Stack = IO_STACK_LOCATION;
    let defective = [
        (
            "InputBufferLength",
            offset_of!(Stack, Parameters.DeviceIoControl.InputBufferLength),
        ),
        (
            "IoControlCode",
            offset_of!(Stack, Parameters.DeviceIoControl.IoControlCode),
        ),
        (
            "Type3InputBuffer",
            offset_of!(Stack, Parameters.DeviceIoControl.Type3InputBuffer),
        ),
    ];
    for (field, rust) in defective {
        let c = format!("offsetof(IO_STACK_LOCATION, Parameters.DeviceIoControl.{field})");
        unit.holds(
            &format!(
                "windows-sys IO_STACK_LOCATION.Parameters.DeviceIoControl.{field} is at {rust}, \
                 known wrong (windows-rs#4404); if this fails it was fixed: check it like the rest"
            ),
            &format!("{c} != {rust}"),
        );
    }
}

/// What the WDM front door (driver/sys/src/wdm.rs) reads and writes through windows-sys:
/// the driver object's dispatch table and unload slot, and the device extension pointer.
/// (windows-sys' `DEVICE_OBJECT` is 8 bytes short at the end, having lost
/// `DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT)`, so only its fields are compared.)
fn front_door_layouts(unit: &mut Unit) {
    use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
    layout!(unit, DRIVER_OBJECT => "DRIVER_OBJECT" {
        Type, Size, DeviceObject, Flags, DriverStart, DriverSize, DriverSection,
        DriverExtension, DriverName, HardwareDatabase, FastIoDispatch, DriverInit,
        DriverStartIo, DriverUnload, MajorFunction,
    });
    for (field, rust) in [
        ("DriverObject", offset_of!(DEVICE_OBJECT, DriverObject)),
        ("Flags", offset_of!(DEVICE_OBJECT, Flags)),
        (
            "Characteristics",
            offset_of!(DEVICE_OBJECT, Characteristics),
        ),
        (
            "DeviceExtension",
            offset_of!(DEVICE_OBJECT, DeviceExtension),
        ),
        ("DeviceType", offset_of!(DEVICE_OBJECT, DeviceType)),
    ] {
        unit.eq(
            &format!("offset_of!(DEVICE_OBJECT, {field})"),
            &format!("offsetof(DEVICE_OBJECT, {field})"),
            rust,
        );
    }
}

fn kernel_object_layouts(unit: &mut Unit) {
    layout!(unit, MDL => "MDL" {
        Next, Size, MdlFlags, Process, MappedSystemVa, StartVa, ByteCount, ByteOffset,
    });
    layout!(unit, LIST_ENTRY => "LIST_ENTRY" { Flink, Blink });
    layout!(unit, DISPATCHER_HEADER => "DISPATCHER_HEADER" { SignalState, WaitListHead });
    layout!(unit, KEVENT => "KEVENT" { Header });
    layout!(unit, EX_RUNDOWN_REF => "EX_RUNDOWN_REF" {
        Anonymous.Count => "Count", Anonymous.Ptr => "Ptr",
    });
}

fn kernel_constants(unit: &mut Unit) {
    constants! { unit,
        SL_PENDING_RETURNED, SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_SUCCESS, SL_INVOKE_ON_ERROR,
        nt::MDL_MAPPED_TO_SYSTEM_VA, nt::MDL_PAGES_LOCKED, nt::MDL_SOURCE_IS_NONPAGED_POOL,
        nt::POOL_FLAG_NON_PAGED, nt::NotificationEvent, nt::SynchronizationEvent, nt::Executive,
        nt::KernelMode,
    };
    unit.eq(
        "nt::SL_INVOKE_ON_ALL",
        "SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL",
        nt::SL_INVOKE_ON_ALL,
    );
    // Every status core and the ABI crate produce or pass through.
    constants! { unit,
        status::STATUS_SUCCESS, status::STATUS_PENDING, status::STATUS_MORE_PROCESSING_REQUIRED,
        status::STATUS_UNSUCCESSFUL, status::STATUS_ACCESS_DENIED,
        status::STATUS_ADDRESS_ALREADY_EXISTS, status::STATUS_BUFFER_TOO_SMALL,
        status::STATUS_CANCELLED, status::STATUS_CONNECTION_REFUSED,
        status::STATUS_DEVICE_NOT_READY, status::STATUS_FILE_FORCED_CLOSED,
        status::STATUS_HOST_UNREACHABLE, status::STATUS_INFO_LENGTH_MISMATCH,
        status::STATUS_INSUFFICIENT_RESOURCES, status::STATUS_INTERNAL_ERROR,
        status::STATUS_INVALID_ADDRESS, status::STATUS_INVALID_ADDRESS_COMPONENT,
        status::STATUS_INVALID_BUFFER_SIZE, status::STATUS_INVALID_DEVICE_REQUEST,
        status::STATUS_INVALID_DEVICE_STATE, status::STATUS_INVALID_HANDLE,
        status::STATUS_INVALID_PARAMETER, status::STATUS_IO_TIMEOUT,
        status::STATUS_NETWORK_UNREACHABLE, status::STATUS_NOINTERFACE,
        status::STATUS_NOT_SUPPORTED, status::STATUS_REVISION_MISMATCH,
        status::STATUS_TOO_MANY_OPENED_FILES,
    };
}

/// The kernel imports core calls, as `windows-sys` declares them, against mingw's wdm.h.
/// mingw-w64 10 declares neither `ExAllocatePool2` nor `Ex{Acquire,Release}SpinLock{Exclusive,
/// Shared}`: those five are not checked.
fn kernel_signatures(unit: &mut Unit) {
    unit.signature(
        "nt::IoCompletionRoutine",
        "PIO_COMPLETION_ROUTINE",
        <nt::IoCompletionRoutine as Signature>::probe,
    );
    functions!(unit, nt {
        IoAllocateIrp: fn(_, _),
        IoFreeIrp: fn(_),
        IoAllocateMdl: fn(_, _, _, _, _),
        IoFreeMdl: fn(_),
        MmBuildMdlForNonPagedPool: fn(_),
        ExFreePoolWithTag: fn(_, _),
        KeGetCurrentIrql: fn(),
        KeInitializeEvent: fn(_, _, _),
        KeSetEvent: fn(_, _, _),
        KeWaitForSingleObject: fn(_, _, _, _, _),
        ExInitializeRundownProtection: fn(_),
        ExAcquireRundownProtection: fn(_),
        ExReleaseRundownProtection: fn(_),
        ExWaitForRundownProtectionRelease: fn(_),
    });
}

// ---------------------------------------------------------------------------------------------
// Winsock structures, constants and control-message buffers: mingw-w64's winsock headers

#[test]
fn winsock_declarations_and_encodings_match_mingw() {
    let mut unit = Unit::new("winsock", WINSOCK_HEAD);
    winsock_layouts(&mut unit);
    winsock_constants(&mut unit);
    cmsg_arithmetic(&mut unit);
    control_buffers(&mut unit);
    sockaddr_buffers(&mut unit);
    unit.check();
}

fn winsock_layouts(unit: &mut Unit) {
    layout!(unit, CMSGHDR => "WSACMSGHDR" { cmsg_len, cmsg_level, cmsg_type });
    layout!(unit, IN_PKTINFO => "IN_PKTINFO" { ipi_addr, ipi_ifindex });
    layout!(unit, IN6_PKTINFO => "IN6_PKTINFO" { ipi6_addr, ipi6_ifindex });
    layout!(unit, SOCKADDR => "SOCKADDR" { sa_family, sa_data });
    layout!(unit, SOCKADDR_IN => "SOCKADDR_IN" { sin_family, sin_port, sin_addr, sin_zero });
    layout!(unit, SOCKADDR_IN6 => "SOCKADDR_IN6" {
        sin6_family, sin6_port, sin6_flowinfo, sin6_addr,
        Anonymous.sin6_scope_id => "sin6_scope_id",
    });
    unit.holds(
        "align_of::<SockAddrBuffer>() >= _Alignof(SOCKADDR_IN6)",
        &format!("{} >= _Alignof(SOCKADDR_IN6)", align_of::<SockAddrBuffer>()),
    );
    unit.holds(
        "SOCKADDR_CAPACITY >= sizeof(SOCKADDR_IN6)",
        &format!("{} >= sizeof(SOCKADDR_IN6)", wskudp_abi::SOCKADDR_CAPACITY),
    );
    unit.holds(
        "align_of::<ControlBuffer>() >= TYPE_ALIGNMENT(WSACMSGHDR)",
        &format!(
            "{} >= TYPE_ALIGNMENT(WSACMSGHDR)",
            align_of::<ControlBuffer>()
        ),
    );
}

fn winsock_constants(unit: &mut Unit) {
    constants! { unit,
        AF_UNSPEC, AF_INET, AF_INET6, wskudp_abi::AF_INET, wskudp_abi::AF_INET6, SOCK_DGRAM,
        IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP, IP_PKTINFO, IPV6_PKTINFO, IP_TOS, IPV6_TCLASS,
        IP_ECN, IPV6_ECN, UDP_SEND_MSG_SIZE,
    };
    unit.eq("AF_INET6", "23", AF_INET6);
}

/// Core's `cmsg` arithmetic against the `WSA_CMSG_*` macros, and each message's (level, type)
/// and data size against the C constants and types.
fn cmsg_arithmetic(unit: &mut Unit) {
    unit.eq("cmsg::HEADER_LEN", "sizeof(WSACMSGHDR)", cmsg::HEADER_LEN);
    unit.eq(
        "cmsg::CMSG_ALIGN",
        "TYPE_ALIGNMENT(WSACMSGHDR)",
        cmsg::CMSG_ALIGN,
    );
    unit.eq(
        "cmsg::CMSG_ALIGN",
        "MAX_NATURAL_ALIGNMENT",
        cmsg::CMSG_ALIGN,
    );
    unit.eq(
        "cmsg::DATA_OFFSET",
        "WSA_CMSGDATA_ALIGN(sizeof(WSACMSGHDR))",
        cmsg::DATA_OFFSET,
    );
    for n in [
        0, 1, 2, 4, 7, 8, 9, 12, 15, 16, 17, 20, 23, 24, 28, 31, 32, 40, 64, 100,
    ] {
        unit.eq(
            &format!("cmsg::align({n})"),
            &format!("WSA_CMSGHDR_ALIGN({n})"),
            cmsg::align(n),
        );
        unit.eq(
            &format!("cmsg::align({n})"),
            &format!("WSA_CMSGDATA_ALIGN({n})"),
            cmsg::align(n),
        );
        unit.eq(
            &format!("cmsg::cmsg_len({n})"),
            &format!("WSA_CMSG_LEN({n})"),
            cmsg::cmsg_len(n),
        );
        unit.eq(
            &format!("cmsg::cmsg_space({n})"),
            &format!("WSA_CMSG_SPACE({n})"),
            cmsg::cmsg_space(n),
        );
    }
    for wire in wire_messages() {
        let (level, ty) = wire.message.level_and_type();
        let name = format!("{:?}", wire.message);
        unit.eq(&format!("{name} level"), wire.level, level);
        unit.eq(&format!("{name} type"), wire.ty, ty);
        unit.eq(
            &format!("{name} data_len"),
            &format!("sizeof({})", wire.data),
            wire.message.data_len(),
        );
    }
    unit.eq(
        "cmsg::MAX_CONTROL_LEN",
        "WSA_CMSG_SPACE(sizeof(IN6_PKTINFO)) + 2 * WSA_CMSG_SPACE(sizeof(INT)) \
         + WSA_CMSG_SPACE(sizeof(DWORD))",
        cmsg::MAX_CONTROL_LEN,
    );
}

/// A control message with its C description: level and type constants, data type, and where
/// in the data its distinctive value bytes sit.
struct Wire {
    message: ControlMessage,
    level: &'static str,
    ty: &'static str,
    data: &'static str,
    /// The bytes of the message's value as core should encode them (network-order address or
    /// host-order integer), and the C offset of those bytes within the data.
    value: Vec<u8>,
    value_offset: &'static str,
}

const V6_SOURCE: Ipv6Addr = Ipv6Addr::new(
    0x2001, 0xdb8, 0x1a2b, 0x3c4d, 0x5e6f, 0x7081, 0x92a3, 0xb4c5,
);
const V4_SOURCE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// Every message kind, values chosen to be unique in a buffer.
fn wire_messages() -> [Wire; 7] {
    let int = |value: i32| value.to_ne_bytes().to_vec();
    [
        Wire {
            message: ControlMessage::SourceV6 {
                address: V6_SOURCE,
                ifindex: 0,
            },
            level: "IPPROTO_IPV6",
            ty: "IPV6_PKTINFO",
            data: "IN6_PKTINFO",
            value: V6_SOURCE.octets().to_vec(),
            value_offset: "offsetof(IN6_PKTINFO, ipi6_addr)",
        },
        Wire {
            message: ControlMessage::TrafficClassV6(0xb8),
            level: "IPPROTO_IPV6",
            ty: "IPV6_TCLASS",
            data: "INT",
            value: int(0xb8),
            value_offset: "0",
        },
        Wire {
            message: ControlMessage::EcnV6(Ecn::Ce),
            level: "IPPROTO_IPV6",
            ty: "IPV6_ECN",
            data: "INT",
            value: int(3),
            value_offset: "0",
        },
        Wire {
            message: ControlMessage::UdpSendMsgSize(1200),
            level: "IPPROTO_UDP",
            ty: "UDP_SEND_MSG_SIZE",
            data: "DWORD",
            value: 1200_u32.to_ne_bytes().to_vec(),
            value_offset: "0",
        },
        Wire {
            message: ControlMessage::SourceV4 {
                address: V4_SOURCE,
                ifindex: 0,
            },
            level: "IPPROTO_IP",
            ty: "IP_PKTINFO",
            data: "IN_PKTINFO",
            value: V4_SOURCE.octets().to_vec(),
            value_offset: "offsetof(IN_PKTINFO, ipi_addr)",
        },
        Wire {
            message: ControlMessage::TosV4(0x2e),
            level: "IPPROTO_IP",
            ty: "IP_TOS",
            data: "INT",
            value: int(0x2e),
            value_offset: "0",
        },
        Wire {
            message: ControlMessage::EcnV4(Ecn::Ect1),
            level: "IPPROTO_IP",
            ty: "IP_ECN",
            data: "INT",
            value: int(1),
            value_offset: "0",
        },
    ]
}

fn read<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().unwrap()
}

/// Where `pattern` first occurs at or after `from`.
fn find(bytes: &[u8], pattern: &[u8], from: usize) -> Option<usize> {
    (from..=bytes.len().saturating_sub(pattern.len())).find(|&at| bytes[at..].starts_with(pattern))
}

/// A fact that fails: something the Rust side looked for in core's bytes is not there.
fn missing(unit: &mut Unit, what: &str) {
    unit.holds(what, "0");
}

/// Bytes no located field explains (padding, interface indexes, `sin_zero`) must be zero.
fn rest_is_zero(unit: &mut Unit, name: &str, bytes: &[u8], explained: &[bool]) {
    for (at, byte) in bytes.iter().enumerate() {
        if !explained[at] && *byte != 0 {
            missing(
                unit,
                &format!("{name}: byte {at} is {byte:#04x}, in no field: {bytes:02x?}"),
            );
        }
    }
}

/// Buffers encoded by core's `Encoder`, located header by header (by level and type, at any
/// byte offset: not with core's rules), then checked against the `WSA_CMSG_*` macros: each
/// header where the macros put it, its `cmsg_len`, level and type, the value where
/// `WSA_CMSG_DATA` and the data type put it, the padded total as `ControlInfoLength`; every
/// other byte zero.
fn control_buffers(unit: &mut Unit) {
    let [v6_source, tclass, ecn6, uso, v4_source, tos, ecn4] = wire_messages();
    let uso4 = Wire {
        message: ControlMessage::UdpSendMsgSize(1472),
        value: 1472_u32.to_ne_bytes().to_vec(),
        ..uso
    };
    control_buffer(unit, "IPv6 buffer", &[v6_source, tclass, ecn6, uso]);
    control_buffer(unit, "IPv4 buffer", &[v4_source, tos, ecn4, uso4]);
}

fn control_buffer(unit: &mut Unit, name: &str, wires: &[Wire]) {
    let mut buffer = ControlBuffer::new();
    let mut encoder = buffer.encoder();
    for wire in wires {
        encoder.push(&wire.message).unwrap();
    }
    let bytes = buffer.as_bytes();
    let level_at = offset_of!(CMSGHDR, cmsg_level);
    let type_at = offset_of!(CMSGHDR, cmsg_type);
    let mut explained = vec![false; bytes.len()];
    let mut spaces = Vec::new();
    let mut cursor = 0;
    for wire in wires {
        let (level, ty) = wire.message.level_and_type();
        let what = format!("{name}: {:?}", wire.message);
        let Some(header) = (cursor..bytes.len()).find(|&at| {
            at + cmsg::HEADER_LEN <= bytes.len()
                && i32::from_ne_bytes(read(bytes, at + level_at)) == level
                && i32::from_ne_bytes(read(bytes, at + type_at)) == ty
        }) else {
            missing(
                unit,
                &format!("{what}: no header with its level and type: {bytes:02x?}"),
            );
            continue;
        };
        let offset = if spaces.is_empty() {
            "0".to_owned()
        } else {
            spaces.join(" + ")
        };
        unit.eq(&format!("{what} header offset"), &offset, header);
        unit.eq(
            &format!("{what} cmsg_len"),
            &format!("WSA_CMSG_LEN(sizeof({}))", wire.data),
            usize::from_ne_bytes(read(bytes, header)),
        );
        unit.eq(&format!("{what} cmsg_level"), wire.level, level);
        unit.eq(&format!("{what} cmsg_type"), wire.ty, ty);
        explained[header..header + cmsg::HEADER_LEN].fill(true);
        let data = format!(
            "WSA_CMSGDATA_ALIGN(sizeof(WSACMSGHDR)) + {}",
            wire.value_offset
        );
        match find(bytes, &wire.value, header + cmsg::HEADER_LEN) {
            Some(value) => {
                unit.eq(&format!("{what} value offset"), &data, value - header);
                explained[value..value + wire.value.len()].fill(true);
            }
            None => missing(
                unit,
                &format!("{what}: value {:02x?} not found", wire.value),
            ),
        }
        spaces.push(format!("WSA_CMSG_SPACE(sizeof({}))", wire.data));
        cursor = header + cmsg::HEADER_LEN;
    }
    let total = spaces.join(" + ");
    unit.eq(&format!("{name}: length"), &total, bytes.len());
    unit.eq(
        &format!("{name}: ControlInfoLength"),
        &total,
        buffer.as_control_info().1,
    );
    rest_is_zero(unit, name, bytes, &explained);
}

/// `SockAddrBuffer` encodings, each field located by its distinctive value, against
/// `offsetof(SOCKADDR_IN(6), …)`; every other byte zero.
fn sockaddr_buffers(unit: &mut Unit) {
    let v6 = SocketAddrV6::new(V6_SOURCE, 0x1bb7, 0x000a_bcde, 0x1234_5678);
    sockaddr_buffer(
        unit,
        SocketAddr::V6(v6),
        "SOCKADDR_IN6",
        &[
            ("sin6_family", AF_INET6.to_ne_bytes().to_vec()),
            ("sin6_port", v6.port().to_be_bytes().to_vec()),
            ("sin6_flowinfo", v6.flowinfo().to_be_bytes().to_vec()),
            ("sin6_addr", v6.ip().octets().to_vec()),
            ("sin6_scope_id", v6.scope_id().to_ne_bytes().to_vec()),
        ],
    );
    let v4 = SocketAddrV4::new(V4_SOURCE, 0x1bb7);
    sockaddr_buffer(
        unit,
        SocketAddr::V4(v4),
        "SOCKADDR_IN",
        &[
            ("sin_family", AF_INET.to_ne_bytes().to_vec()),
            ("sin_port", v4.port().to_be_bytes().to_vec()),
            ("sin_addr", v4.ip().octets().to_vec()),
        ],
    );
}

fn sockaddr_buffer(unit: &mut Unit, addr: SocketAddr, c: &str, fields: &[(&str, Vec<u8>)]) {
    let buffer = SockAddrBuffer::new(addr);
    let bytes = buffer.as_bytes();
    let mut explained = vec![false; bytes.len()];
    unit.eq(
        &format!("SockAddrBuffer({addr}) length"),
        &format!("sizeof({c})"),
        bytes.len(),
    );
    for (field, value) in fields {
        let what = format!("SockAddrBuffer({addr}) {field}");
        match find(bytes, value, 0) {
            Some(at) => {
                unit.eq(&what, &format!("offsetof({c}, {field})"), at);
                explained[at..at + value.len()].fill(true);
            }
            None => missing(
                unit,
                &format!("{what}: value {value:02x?} not found: {bytes:02x?}"),
            ),
        }
    }
    rest_is_zero(unit, &format!("SockAddrBuffer({addr})"), bytes, &explained);
}

// ---------------------------------------------------------------------------------------------
// WSK: Wine's ddk/wsk.h

/// Wine's `ddk/wsk.h`: `WSKUDP_WINE_WSK_H`, or where `tests/fetch-wine-wsk.sh` puts it.
fn wine_wsk_h() -> PathBuf {
    let path = std::env::var_os("WSKUDP_WINE_WSK_H").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wine-include/ddk/wsk.h"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "Wine's include/ddk/wsk.h is not at {}: run tests/fetch-wine-wsk.sh (or set \
         WSKUDP_WINE_WSK_H to a copy of it)",
        path.display()
    );
    path.canonicalize().unwrap()
}

#[test]
fn wsk_declarations_match_wine_wsk_h() {
    let mut unit = Unit::new("wsk", &wsk_head(&wine_wsk_h()));
    wsk_layouts(&mut unit);
    wsk_dispatch_tables(&mut unit);
    wsk_constants(&mut unit);
    unit.check();
}

fn wsk_layouts(unit: &mut Unit) {
    layout!(unit, WSK_SOCKET => "WSK_SOCKET" { Dispatch });
    layout!(unit, WSK_BUF => "WSK_BUF" { Mdl, Offset, Length });
    layout!(unit, WSK_BUF_LIST => "WSK_BUF_LIST" { Next, Buffer });
    layout!(unit, WSK_DATAGRAM_INDICATION => "WSK_DATAGRAM_INDICATION" {
        Next, Buffer, ControlInfo, ControlInfoLength, RemoteAddress,
    });
    layout!(unit, WSK_CLIENT_NPI => "WSK_CLIENT_NPI" { ClientContext, Dispatch });
    layout!(unit, WSK_PROVIDER_NPI => "WSK_PROVIDER_NPI" { Client, Dispatch });
    layout!(unit, WSK_REGISTRATION => "WSK_REGISTRATION" {
        ReservedRegistrationState, ReservedRegistrationContext, ReservedRegistrationLock,
    });
}

/// Every slot of every dispatch table: offset, size and function type.
fn wsk_dispatch_tables(unit: &mut Unit) {
    layout!(unit, WSK_CLIENT_DISPATCH => "WSK_CLIENT_DISPATCH" {
        Version, Reserved, WskClientEvent,
    });
    slots!(unit, WSK_CLIENT_DISPATCH => "WSK_CLIENT_DISPATCH" { WskClientEvent });
    layout!(unit, WSK_PROVIDER_DISPATCH => "WSK_PROVIDER_DISPATCH" {
        Version, Reserved, WskSocket, WskSocketConnect, WskControlClient, WskGetAddressInfo,
        WskFreeAddressInfo, WskGetNameInfo,
    });
    // The other slots are `UnusedSlot`s: declared for their position only.
    slots!(unit, WSK_PROVIDER_DISPATCH => "WSK_PROVIDER_DISPATCH" {
        WskSocket, WskControlClient,
    });
    layout!(unit, WSK_PROVIDER_BASIC_DISPATCH => "WSK_PROVIDER_BASIC_DISPATCH" {
        WskControlSocket, WskCloseSocket,
    });
    slots!(unit, WSK_PROVIDER_BASIC_DISPATCH => "WSK_PROVIDER_BASIC_DISPATCH" {
        WskControlSocket, WskCloseSocket,
    });
    layout!(unit, WSK_PROVIDER_DATAGRAM_DISPATCH => "WSK_PROVIDER_DATAGRAM_DISPATCH" {
        Basic, Basic.WskControlSocket, Basic.WskCloseSocket, WskBind, WskSendTo,
        WskReceiveFrom, WskRelease, WskGetLocalAddress, WskSendMessages,
    });
    slots!(unit, WSK_PROVIDER_DATAGRAM_DISPATCH => "WSK_PROVIDER_DATAGRAM_DISPATCH" {
        Basic.WskControlSocket, Basic.WskCloseSocket, WskBind, WskSendTo, WskReceiveFrom,
        WskRelease, WskGetLocalAddress, WskSendMessages,
    });
    functions!(unit, wsk {
        WskRegister: fn(_, _),
        WskDeregister: fn(_),
        WskCaptureProviderNPI: fn(_, _, _),
        WskReleaseProviderNPI: fn(_),
    });
}

fn wsk_constants(unit: &mut Unit) {
    constants! { unit,
        wsk::WSK_NO_WAIT, wsk::WSK_INFINITE_WAIT, wsk::WSK_FLAG_BASIC_SOCKET,
        wsk::WSK_FLAG_LISTEN_SOCKET, wsk::WSK_FLAG_CONNECTION_SOCKET, wsk::WSK_FLAG_DATAGRAM_SOCKET,
        wsk::WSK_FLAG_STREAM_SOCKET, wsk::WskSetOption, wsk::WskGetOption, wsk::WskIoctl,
    };
    unit.eq(
        "size_of::<WSK_CONTROL_SOCKET_TYPE>()",
        "sizeof(WSK_CONTROL_SOCKET_TYPE)",
        size_of::<wsk::WSK_CONTROL_SOCKET_TYPE>(),
    );
    for (major, minor) in [(0, 0), (1, 0), (1, 1), (2, 3), (0x12, 0x34), (0xff, 0xff)] {
        unit.eq(
            &format!("make_wsk_version({major}, {minor})"),
            &format!("MAKE_WSK_VERSION({major}, {minor})"),
            wsk::make_wsk_version(major, minor),
        );
    }
    unit.eq(
        "wskudp_core::wsk::CLIENT_WSK_VERSION",
        "MAKE_WSK_VERSION(1, 0)",
        wskudp_core::wsk::CLIENT_WSK_VERSION,
    );
}
