//! WDF objects: handles, parents and children, contexts, and deletion order.
//!
//! - Attributes are validated as `FxValidateObjectAttributes` does
//!   (`shared/object/fxvalidatefunctions.cpp:45-220`).
//! - A context is zero-filled and sized `ContextSizeOverride` or `ContextSize`
//!   (`shared/object/handleapi.cpp:38-69, 341-344`); `WdfObjectGetTypedContextWorker` matches
//!   the type info by pointer and returns NULL when none matches (`handleapi.cpp:561-607`).
//! - Deleting an object runs every descendant's `EvtCleanupCallback` before its own, children
//!   in creation order, then the destroy callbacks the same way
//!   (`shared/object/fxobjectstatemachine.cpp:1184-1247`).
//!
//! Handles are never reused, so the model also catches a handle used after its object was
//! deleted, which KMDF itself does not check (a use-after-free there).

use std::collections::HashMap;
use std::ffi::c_void;

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_PARAMETER,
};
use wskudp_wdf_decls::{
    _WDF_EXECUTION_LEVEL, _WDF_SYNCHRONIZATION_SCOPE, PCWDF_OBJECT_CONTEXT_TYPE_INFO,
    PFN_WDF_OBJECT_CONTEXT_CLEANUP, PFN_WDF_OBJECT_CONTEXT_DESTROY, PWDF_DRIVER_GLOBALS,
    STATUS_WDF_OBJECT_ATTRIBUTES_INVALID, STATUS_WDF_PARENT_ASSIGNMENT_NOT_ALLOWED,
    WDF_OBJECT_ATTRIBUTES, WDF_OBJECT_CONTEXT_TYPE_INFO, WDFOBJECT,
};

use super::{address, check_globals, framework, pointer, violation};

/// What an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Driver,
    Device,
    Queue,
    Request,
    File,
    Timer,
    SpinLock,
    String,
    /// A request's input or output buffer (`WdfRequestRetrieve*Memory`).
    Memory,
    /// A PnP device's resource lists (`WDFCMRESLIST`, empty for a root-enumerated device).
    ResourceList,
}

/// One zero-filled context, 16-byte aligned like a pool block.
pub(crate) struct ContextBlock {
    type_info: usize,
    memory: Box<[u128]>,
}

/// One live object.
pub(crate) struct Object {
    pub(crate) kind: Kind,
    pub(crate) parent: Option<usize>,
    pub(crate) children: Vec<usize>,
    contexts: Vec<ContextBlock>,
    cleanup: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    destroy: PFN_WDF_OBJECT_CONTEXT_DESTROY,
    /// `MarkNoDeleteDDI`: the driver may not `WdfObjectDelete` it.
    pub(crate) no_delete_ddi: bool,
    /// Being deleted: its callbacks are running or about to.
    pub(crate) disposing: bool,
}

/// Every live object, by handle.
#[derive(Default)]
pub(crate) struct Objects {
    next: usize,
    map: HashMap<usize, Object>,
}

/// `sizeof(WDF_OBJECT_ATTRIBUTES)` and `sizeof(WDF_OBJECT_CONTEXT_TYPE_INFO)` on x64.
pub(crate) const ATTRIBUTES_SIZE: u32 = 56;
const CONTEXT_TYPE_INFO_SIZE: u32 = 40;
const _: () = assert!(ATTRIBUTES_SIZE as usize == size_of::<WDF_OBJECT_ATTRIBUTES>());
const _: () = assert!(CONTEXT_TYPE_INFO_SIZE as usize == size_of::<WDF_OBJECT_CONTEXT_TYPE_INFO>());

/// Whether `handle` is not a live object of `kind` (`WDF_INVALID_HANDLE`, recorded if so).
pub(crate) fn invalid_handle(api: &str, handle: usize, kind: Kind) -> bool {
    let ok = framework()
        .objects
        .get(handle)
        .is_some_and(|o| o.kind == kind);
    if !ok {
        violation(
            "WDF_INVALID_HANDLE",
            format!("{api}({handle:#x}): not a live {kind:?} (bugcheck 0x10D)"),
        );
    }
    !ok
}

/// What a DDI taking a `kind` handle checks first: the driver globals (a mismatch is recorded
/// and the call goes on), then the handle: its address if it is a live `kind`.
pub(crate) fn handle_arg<T>(
    globals: PWDF_DRIVER_GLOBALS,
    api: &str,
    object: *const T,
    kind: Kind,
) -> Option<usize> {
    let _ = check_globals(globals, api);
    let handle = address(object);
    (!invalid_handle(api, handle, kind)).then_some(handle)
}

/// `FxValidateObjectAttributesForParentHandle` (`shared/inc/private/common/fxvalidatefunctions.hpp:70-109`):
/// the parent named in `attributes`, if its `Size` is right and it names one; a parent that
/// is not a live object is `WDF_INVALID_HANDLE` (`FxObjectHandleGetPtrAndGlobals`).
pub(crate) fn parent_of(
    api: &str,
    attributes: *const WDF_OBJECT_ATTRIBUTES,
) -> Result<Option<usize>, NTSTATUS> {
    // SAFETY: Null or the driver's attributes.
    let Some(attributes) = (unsafe { attributes.as_ref() }) else {
        return Ok(None);
    };
    if attributes.Size != ATTRIBUTES_SIZE || attributes.ParentObject.is_null() {
        return Ok(None);
    }
    let parent = address(attributes.ParentObject);
    if framework().objects.get(parent).is_none() {
        violation(
            "WDF_INVALID_HANDLE",
            format!("{api}: ParentObject {parent:#x} is not a live WDF object (bugcheck 0x10D)"),
        );
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok(Some(parent))
}

/// The first check of `FxValidateObjectAttributes` (`shared/object/fxvalidatefunctions.cpp`):
/// `Size` must be this version's; `STATUS_INFO_LENGTH_MISMATCH` otherwise (recorded).
pub(crate) fn attributes_size(
    api: &str,
    attributes: &WDF_OBJECT_ATTRIBUTES,
) -> Result<(), NTSTATUS> {
    if attributes.Size != ATTRIBUTES_SIZE {
        violation(
            "WdfAttributesSize",
            format!(
                "{api}: WDF_OBJECT_ATTRIBUTES.Size is {}, not {ATTRIBUTES_SIZE}",
                attributes.Size
            ),
        );
        return Err(STATUS_INFO_LENGTH_MISMATCH);
    }
    Ok(())
}

/// Validates `attributes` as `FxValidateObjectAttributes` does
/// (`shared/object/fxvalidatefunctions.cpp:45-220`); records the failed check.
pub(crate) fn validate_attributes(
    attributes: *const WDF_OBJECT_ATTRIBUTES,
    parent_allowed: bool,
    api: &str,
) -> Result<(), NTSTATUS> {
    // SAFETY: Null or the caller's attributes (the DDI's contract).
    let Some(attributes) = (unsafe { attributes.as_ref() }) else {
        return Ok(());
    };
    let fail = |rule: &'static str, status: NTSTATUS, what: String| {
        violation(rule, format!("{api}: {what}"));
        Err(status)
    };
    attributes_size(api, attributes)?;
    // SAFETY: Null or a type info the driver declared (static).
    if let Some(info) = unsafe { attributes.ContextTypeInfo.as_ref() } {
        if info.Size != CONTEXT_TYPE_INFO_SIZE {
            return fail(
                "WdfContextTypeInfoSize",
                STATUS_INFO_LENGTH_MISMATCH,
                format!("WDF_OBJECT_CONTEXT_TYPE_INFO.Size is {}", info.Size),
            );
        }
        if info.ContextSize > 0 && info.ContextName.is_null() {
            return fail(
                "WdfContextTypeInfoNoName",
                STATUS_WDF_OBJECT_ATTRIBUTES_INVALID,
                "a context type with a size but no ContextName".into(),
            );
        }
        if attributes.ContextSizeOverride > 0 && attributes.ContextSizeOverride < info.ContextSize {
            return fail(
                "WdfContextSizeOverride",
                STATUS_WDF_OBJECT_ATTRIBUTES_INVALID,
                "ContextSizeOverride smaller than the context type's size".into(),
            );
        }
    } else if attributes.ContextSizeOverride > 0 {
        return fail(
            "WdfContextSizeOverride",
            STATUS_WDF_OBJECT_ATTRIBUTES_INVALID,
            "ContextSizeOverride without a ContextTypeInfo".into(),
        );
    }
    if !parent_allowed && !attributes.ParentObject.is_null() {
        return fail(
            "WdfParentNotAllowed",
            STATUS_WDF_PARENT_ASSIGNMENT_NOT_ALLOWED,
            "ParentObject set where the framework assigns the parent".into(),
        );
    }
    let level = attributes.ExecutionLevel;
    if level <= _WDF_EXECUTION_LEVEL::WdfExecutionLevelInvalid
        || level > _WDF_EXECUTION_LEVEL::WdfExecutionLevelDispatch
    {
        return fail(
            "WdfAttributesExecutionLevel",
            STATUS_WDF_OBJECT_ATTRIBUTES_INVALID,
            format!(
                "ExecutionLevel {level} is invalid (use WDF_OBJECT_ATTRIBUTES_INIT: 0 is WdfExecutionLevelInvalid)"
            ),
        );
    }
    let scope = attributes.SynchronizationScope;
    if scope <= _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInvalid
        || scope > _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeNone
    {
        return fail(
            "WdfAttributesSynchronizationScope",
            STATUS_WDF_OBJECT_ATTRIBUTES_INVALID,
            format!(
                "SynchronizationScope {scope} is invalid (0 is WdfSynchronizationScopeInvalid)"
            ),
        );
    }
    Ok(())
}

impl Objects {
    /// A new object under `parent` with the attributes' context and callbacks (already
    /// validated).
    pub(crate) fn create(
        &mut self,
        kind: Kind,
        parent: Option<usize>,
        attributes: *const WDF_OBJECT_ATTRIBUTES,
    ) -> usize {
        self.next += 1;
        // Aligned, non-null, never reused, and never a real pointer the driver could have.
        let handle = 0x7d00_0000_0000 + self.next * 16;
        // SAFETY: Null or validated attributes.
        let attributes = unsafe { attributes.as_ref() };
        let mut contexts = Vec::new();
        let (mut cleanup, mut destroy) = (None, None);
        if let Some(attributes) = attributes {
            cleanup = attributes.EvtCleanupCallback;
            destroy = attributes.EvtDestroyCallback;
            // SAFETY: Validated: null or a type info of the right size.
            if let Some(info) = unsafe { attributes.ContextTypeInfo.as_ref() } {
                let size = if attributes.ContextSizeOverride > 0 {
                    attributes.ContextSizeOverride
                } else {
                    info.ContextSize
                };
                contexts.push(ContextBlock {
                    type_info: address(attributes.ContextTypeInfo),
                    memory: vec![0_u128; size.div_ceil(16).max(1)].into_boxed_slice(),
                });
            }
        }
        self.map.insert(
            handle,
            Object {
                kind,
                parent,
                children: Vec::new(),
                contexts,
                cleanup,
                destroy,
                no_delete_ddi: false,
                disposing: false,
            },
        );
        if let Some(parent) = parent.and_then(|p| self.map.get_mut(&p)) {
            parent.children.push(handle);
        }
        handle
    }

    pub(crate) fn get(&self, handle: usize) -> Option<&Object> {
        self.map.get(&handle)
    }

    pub(crate) fn get_mut(&mut self, handle: usize) -> Option<&mut Object> {
        self.map.get_mut(&handle)
    }

    /// The object's first context (a device's `DeviceExtension`).
    pub(crate) fn first_context(&mut self, handle: usize) -> *mut c_void {
        self.map
            .get_mut(&handle)
            .and_then(|o| o.contexts.first_mut())
            .map_or(std::ptr::null_mut(), |c| c.memory.as_mut_ptr().cast())
    }

    /// Objects alive, for the leak report.
    pub(crate) fn live(&self) -> usize {
        self.map.len()
    }

    /// `handle` and every descendant, children before parents (creation order among
    /// siblings), each marked disposing.
    pub(crate) fn subtree(&mut self, handle: usize) -> Vec<usize> {
        let mut order = Vec::new();
        self.collect(handle, &mut order);
        order
    }

    fn collect(&mut self, handle: usize, order: &mut Vec<usize>) {
        let children = match self.map.get_mut(&handle) {
            Some(object) if !object.disposing => {
                object.disposing = true;
                object.children.clone()
            }
            _ => return,
        };
        for child in children {
            self.collect(child, order);
        }
        order.push(handle);
    }

    /// The kinds and the cleanup and destroy callbacks of `handles`.
    pub(crate) fn callbacks(&self, handles: &[usize]) -> Vec<Callbacks> {
        handles
            .iter()
            .filter_map(|h| {
                self.map.get(h).map(|o| Callbacks {
                    handle: *h,
                    kind: o.kind,
                    cleanup: o.cleanup,
                    destroy: o.destroy,
                })
            })
            .collect()
    }

    /// Forgets `handles` (their callbacks have run) and frees their contexts.
    pub(crate) fn remove(&mut self, handles: &[usize]) {
        for handle in handles {
            if let Some(object) = self.map.remove(handle)
                && let Some(parent) = object.parent.and_then(|p| self.map.get_mut(&p))
            {
                parent.children.retain(|child| child != handle);
            }
        }
    }
}

/// One object's kind and driver callbacks, for its deletion.
pub(crate) struct Callbacks {
    handle: usize,
    kind: Kind,
    cleanup: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    destroy: PFN_WDF_OBJECT_CONTEXT_DESTROY,
}

/// Deletes `handle` and its descendants, as `FxObject::PerformEarlyDispose` and
/// `DestroyChildren` do (`fxobjectstatemachine.cpp:1184-1247`): for each object, children
/// first, the framework's own `Dispose()` (a queue purges and waits for its requests, a timer
/// stops and waits for its callback) and then the driver's `EvtCleanupCallback`; then every
/// destroy callback; then the objects. Callbacks run without the framework lock, at
/// `PASSIVE_LEVEL` (the device's execution level), and may still use the handles.
pub(crate) fn delete_tree(handle: usize) {
    delete_tree_at(handle, true);
}

/// [`delete_tree`], with the callbacks at the caller's IRQL when `passive` is false (a request
/// deleted by its completion, which may run at `DISPATCH_LEVEL`).
pub(crate) fn delete_tree_at(handle: usize, passive: bool) {
    let (order, callbacks) = {
        let mut fx = framework();
        let order = fx.objects.subtree(handle);
        let callbacks = fx.objects.callbacks(&order);
        (order, callbacks)
    };
    let call = |what: &str, f: &dyn Fn()| {
        if passive {
            super::at_passive(f);
        } else {
            super::in_callback(what, f);
        }
    };
    for object in &callbacks {
        super::dispose(object.kind, object.handle);
        if let Some(cleanup) = object.cleanup {
            // SAFETY: The driver's cleanup callback for its object, which is still valid.
            call("EvtCleanupCallback", &|| unsafe {
                cleanup(pointer(object.handle));
            });
        }
    }
    for object in &callbacks {
        if let Some(destroy) = object.destroy {
            // SAFETY: The driver's destroy callback, as the object goes.
            call("EvtDestroyCallback", &|| unsafe {
                destroy(pointer(object.handle));
            });
        }
    }
    framework().objects.remove(&order);
}

/// `WdfObjectGetTypedContextWorker` (IRQL <= `DISPATCH_LEVEL`; `handleapi.cpp:685-740`).
pub(crate) unsafe extern "C" fn wdf_object_get_typed_context_worker(
    globals: PWDF_DRIVER_GLOBALS,
    handle: WDFOBJECT,
    type_info: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
) -> *mut c_void {
    let _ = super::check_globals(globals, "WdfObjectGetTypedContextWorker");
    if handle.is_null() || type_info.is_null() {
        violation(
            "WDF_REQUIRED_PARAMETER_IS_NULL",
            "WdfObjectGetTypedContextWorker with a NULL handle or TypeInfo (bugcheck 0x10D)".into(),
        );
        return std::ptr::null_mut();
    }
    let mut fx = framework();
    let Some(object) = fx.objects.get_mut(address(handle)) else {
        drop(fx);
        violation(
            "WdfStaleHandle",
            format!("WdfObjectGetTypedContextWorker on {handle:p}, not a live WDF object"),
        );
        return std::ptr::null_mut();
    };
    let wanted = address(type_info);
    object
        .contexts
        .iter_mut()
        .find(|context| context.type_info == wanted)
        .map_or(std::ptr::null_mut(), |context| {
            context.memory.as_mut_ptr().cast()
        })
}
