//! The part of libvirt's C API sdsec uses, with libvirt's client library (`libvirt.so.0`)
//! loaded when a connection is first opened rather than linked into the binary.
//!
//! Linked, a missing library stops the provider before it can say anything, also for users
//! who never name a libvirt host; loaded, only asking for libvirt fails, with
//! [`Error::not_installed`] saying what to install. The API is libvirt's stable C API (every
//! function used here has been there since libvirt 4.5), so no headers are needed to build.
//!
//! Every handle holds a reference counted libvirt object and the table of the library's
//! functions; dropping it releases the reference.

#![allow(unsafe_code)] // FFI: every call into libvirt and each handle's release.

/// A handle on one libvirt object: a counted reference, taken again by `clone` and released
/// by `drop`, with the function table it was made through.
macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $ref_fn:ident, $free_fn:ident) => {
        $(#[$doc])*
        pub struct $name {
            ptr: std::ptr::NonNull<std::ffi::c_void>,
            pub(crate) api: &'static crate::api::Api,
        }

        // SAFETY: libvirt's objects are reference counted and its public API is thread-safe:
        // a handle may be used from, and released on, any thread.
        unsafe impl Send for $name {}
        // SAFETY: as above; libvirt serialises calls on one object itself.
        unsafe impl Sync for $name {}

        impl $name {
            /// Takes ownership of the reference a libvirt call returned; the thread's last
            /// error when it returned NULL.
            #[allow(dead_code)]
            pub(crate) fn own(api: &'static crate::api::Api, ptr: crate::api::Ptr) -> Result<$name, crate::Error> {
                std::ptr::NonNull::new(ptr).map(|ptr| $name { ptr, api }).ok_or_else(|| crate::Error::last(api))
            }

            pub(crate) fn raw(&self) -> crate::api::Ptr {
                self.ptr.as_ptr()
            }
        }

        impl Clone for $name {
            fn clone(&self) -> $name {
                // SAFETY: the object is alive (this handle holds a reference); the new
                // reference is released by the clone's drop.
                unsafe { (self.api.$ref_fn)(self.raw()) };
                $name { ptr: self.ptr, api: self.api }
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: releases the one reference this handle holds, once.
                unsafe { (self.api.$free_fn)(self.raw()) };
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:p})"), self.ptr)
            }
        }
    };
}

mod api;
pub mod connect;
pub mod domain;
pub mod error;
pub mod event;
pub mod network;
pub mod storage;
pub mod stream;

pub use connect::{Connect, NodeInfo};
pub use domain::{Domain, DomainState};
pub use error::{Error, ErrorNumber};
pub use network::{NWFilter, Network};
pub use storage::{StoragePool, StorageVol, VolInfo};
pub use stream::Stream;

/// Flags and values of libvirt's C API, as its headers define them.
pub mod sys {
    use std::ffi::{c_int, c_uint};

    pub const VIR_DOMAIN_NONE: c_uint = 0;
    pub const VIR_DOMAIN_METADATA_ELEMENT: c_int = 2;
    pub const VIR_DOMAIN_AFFECT_LIVE: c_uint = 1;
    pub const VIR_DOMAIN_DESTROY_GRACEFUL: c_uint = 1;
    pub const VIR_STREAM_NONBLOCK: c_uint = 1;
    pub const VIR_STORAGE_POOL_CREATE_WITH_BUILD: c_uint = 1;
}
