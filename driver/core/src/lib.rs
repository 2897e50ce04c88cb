//! wskudp's datapath: a Winsock Kernel client that sends UDP datagrams from the kernel.
//!
//! Core is framework-neutral and platform-neutral. It calls the kernel only through
//! [`ddi`] (windows-sys DDI declarations and a hand-declared, layout-asserted WSK ABI), so the
//! same code links against `ntoskrnl.exe`/`netio.sys` in the driver and against the kernel
//! model (`tests/kmodel`) on a Linux host. Front doors (KMDF, WDM, the harness's model backend)
//! create a [`Driver`], hand it [`IoctlRequest`]s, and drop it at unload.
//!
//! Kernel rules kept here (and checked by the model):
//! - the send path and every completion routine run at IRQL <= `DISPATCH_LEVEL` and touch
//!   non-paged memory only; every function documents its IRQL;
//! - each WSK call gets an `IoAllocateIrp` IRP (a send context's own, reset with `IoReuseIrp`
//!   between calls) whose completion routine runs on success, error and cancel, returns
//!   `STATUS_MORE_PROCESSING_REQUIRED`, and is the only place the IRP and the buffers it
//!   describes are released; no completion routine calls a WSK function;
//! - `CMSGHDR` buffers follow `ws2def.h` exactly ([`cmsg`]);
//! - the provider NPI is captured at `PASSIVE_LEVEL` and released once; `WskDeregister` runs
//!   after every socket is closed; `WskCloseSocket` is never called while another call on the
//!   socket is in progress (a call gate), and the socket's memory goes only after every request
//!   using it finished (rundown);
//! - no panic is reachable from request data.

#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod cache;
pub mod cmsg;
pub mod ddi;
mod dispatch;
mod driver;
mod handle;
pub mod irp;
pub mod irql;
mod mdl;
pub mod pool;
mod send;
pub mod sockaddr;
mod sockets;
mod stats;
pub mod sync;
mod time;
pub mod wsk;

/// The `NTSTATUS` values core uses (shared with the ABI crate).
pub mod status {
    pub use wskudp_abi::status::*;
}

pub use dispatch::{CancelFn, CancelHooks, CompleteFn, IoctlRequest};
#[cfg(feature = "abi-override")]
#[doc(hidden)]
pub use driver::CREATE_SPEAKING;
pub use driver::Driver;
pub use handle::HandleState;
pub use irp::DriverDevice;
