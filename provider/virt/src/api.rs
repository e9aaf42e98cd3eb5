//! libvirt's functions, looked up in `libvirt.so.0` once per process.

use std::ffi::{CStr, CString, c_char, c_int, c_uchar, c_uint, c_ulong, c_ulonglong, c_ushort, c_void};
use std::sync::OnceLock;

use libloading::Library;

use crate::error::Error;

/// The soname libvirt's client library has had since its first release.
pub const LIBRARY: &str = "libvirt.so.0";

/// An opaque libvirt object (`virConnectPtr`, `virDomainPtr`, ...).
pub type Ptr = *mut c_void;

/// `virNodeInfo`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawNodeInfo {
    pub model: [c_char; 32],
    pub memory: c_ulong,
    pub cpus: c_uint,
    pub mhz: c_uint,
    pub nodes: c_uint,
    pub sockets: c_uint,
    pub cores: c_uint,
    pub threads: c_uint,
}

/// `virDomainInfo`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawDomainInfo {
    pub state: c_uchar,
    pub max_mem: c_ulong,
    pub memory: c_ulong,
    pub nr_virt_cpu: c_ushort,
    pub cpu_time: c_ulonglong,
}

/// `virStorageVolInfo`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawVolInfo {
    pub kind: c_int,
    pub capacity: c_ulonglong,
    pub allocation: c_ulonglong,
}

/// `virErrorFunc`.
pub type ErrorFunc = Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>;

macro_rules! functions {
    ($($name:ident: fn($($arg:ty),*) -> $ret:ty;)*) => {
        /// The library and the address of each function used.
        #[allow(non_snake_case)]
        pub struct Api {
            $(pub $name: unsafe extern "C" fn($($arg),*) -> $ret,)*
            /// Kept loaded for the process's life: the addresses above point into it.
            _library: Library,
        }

        impl Api {
            /// The table; the first function the library lacks (a libvirt older than this
            /// crate needs) otherwise.
            fn load(library: Library) -> Result<Api, &'static str> {
                // SAFETY: each symbol is one of libvirt's public functions, declared with the
                // C signature libvirt's headers give it; the addresses stay valid as long as
                // `library`, which the table owns.
                unsafe {
                    Ok(Api {
                        $($name: *library
                            .get::<unsafe extern "C" fn($($arg),*) -> $ret>(concat!(stringify!($name), "\0").as_bytes())
                            .map_err(|_| stringify!($name))?,)*
                        _library: library,
                    })
                }
            }
        }
    };
}

functions! {
    virConnectOpen: fn(*const c_char) -> Ptr;
    virConnectRef: fn(Ptr) -> c_int;
    virConnectClose: fn(Ptr) -> c_int;
    virConnectGetURI: fn(Ptr) -> *mut c_char;
    virConnectGetCapabilities: fn(Ptr) -> *mut c_char;
    virConnectSetKeepAlive: fn(Ptr, c_int, c_uint) -> c_int;
    virNodeGetInfo: fn(Ptr, *mut RawNodeInfo) -> c_int;
    virConnectListAllDomains: fn(Ptr, *mut *mut Ptr, c_uint) -> c_int;
    virConnectListAllNWFilters: fn(Ptr, *mut *mut Ptr, c_uint) -> c_int;

    virDomainLookupByName: fn(Ptr, *const c_char) -> Ptr;
    virDomainCreateXML: fn(Ptr, *const c_char, c_uint) -> Ptr;
    virDomainRef: fn(Ptr) -> c_int;
    virDomainFree: fn(Ptr) -> c_int;
    virDomainGetName: fn(Ptr) -> *const c_char;
    virDomainGetXMLDesc: fn(Ptr, c_uint) -> *mut c_char;
    virDomainGetInfo: fn(Ptr, *mut RawDomainInfo) -> c_int;
    virDomainGetMetadata: fn(Ptr, c_int, *const c_char, c_uint) -> *mut c_char;
    virDomainSetMetadata: fn(Ptr, c_int, *const c_char, *const c_char, *const c_char, c_uint) -> c_int;
    virDomainIsPersistent: fn(Ptr) -> c_int;
    virDomainSuspend: fn(Ptr) -> c_int;
    virDomainResume: fn(Ptr) -> c_int;
    virDomainDestroy: fn(Ptr) -> c_int;
    virDomainDestroyFlags: fn(Ptr, c_uint) -> c_int;
    virDomainUndefine: fn(Ptr) -> c_int;
    virDomainOpenChannel: fn(Ptr, *const c_char, Ptr, c_uint) -> c_int;

    virNetworkLookupByName: fn(Ptr, *const c_char) -> Ptr;
    virNetworkDefineXML: fn(Ptr, *const c_char) -> Ptr;
    virNetworkRef: fn(Ptr) -> c_int;
    virNetworkFree: fn(Ptr) -> c_int;
    virNetworkGetXMLDesc: fn(Ptr, c_uint) -> *mut c_char;
    virNetworkGetUUIDString: fn(Ptr, *mut c_char) -> c_int;
    virNetworkIsActive: fn(Ptr) -> c_int;
    virNetworkCreate: fn(Ptr) -> c_int;
    virNetworkDestroy: fn(Ptr) -> c_int;
    virNetworkUndefine: fn(Ptr) -> c_int;
    virNetworkSetAutostart: fn(Ptr, c_int) -> c_int;

    virNWFilterLookupByName: fn(Ptr, *const c_char) -> Ptr;
    virNWFilterDefineXML: fn(Ptr, *const c_char) -> Ptr;
    virNWFilterRef: fn(Ptr) -> c_int;
    virNWFilterFree: fn(Ptr) -> c_int;
    virNWFilterGetName: fn(Ptr) -> *const c_char;
    virNWFilterGetXMLDesc: fn(Ptr, c_uint) -> *mut c_char;
    virNWFilterUndefine: fn(Ptr) -> c_int;

    virStoragePoolLookupByName: fn(Ptr, *const c_char) -> Ptr;
    virStoragePoolDefineXML: fn(Ptr, *const c_char, c_uint) -> Ptr;
    virStoragePoolRef: fn(Ptr) -> c_int;
    virStoragePoolFree: fn(Ptr) -> c_int;
    virStoragePoolIsActive: fn(Ptr) -> c_int;
    virStoragePoolCreate: fn(Ptr, c_uint) -> c_int;
    virStoragePoolSetAutostart: fn(Ptr, c_int) -> c_int;
    virStoragePoolGetUUIDString: fn(Ptr, *mut c_char) -> c_int;
    virStoragePoolRefresh: fn(Ptr, c_uint) -> c_int;
    virStoragePoolListAllVolumes: fn(Ptr, *mut *mut Ptr, c_uint) -> c_int;

    virStorageVolLookupByName: fn(Ptr, *const c_char) -> Ptr;
    virStorageVolCreateXML: fn(Ptr, *const c_char, c_uint) -> Ptr;
    virStorageVolCreateXMLFrom: fn(Ptr, *const c_char, Ptr, c_uint) -> Ptr;
    virStorageVolRef: fn(Ptr) -> c_int;
    virStorageVolFree: fn(Ptr) -> c_int;
    virStorageVolGetName: fn(Ptr) -> *const c_char;
    virStorageVolGetKey: fn(Ptr) -> *const c_char;
    virStorageVolGetPath: fn(Ptr) -> *mut c_char;
    virStorageVolGetInfo: fn(Ptr, *mut RawVolInfo) -> c_int;
    virStorageVolGetXMLDesc: fn(Ptr, c_uint) -> *mut c_char;
    virStorageVolDelete: fn(Ptr, c_uint) -> c_int;
    virStorageVolUpload: fn(Ptr, Ptr, c_ulonglong, c_ulonglong, c_uint) -> c_int;
    virStorageVolDownload: fn(Ptr, Ptr, c_ulonglong, c_ulonglong, c_uint) -> c_int;

    virStreamNew: fn(Ptr, c_uint) -> Ptr;
    virStreamRef: fn(Ptr) -> c_int;
    virStreamFree: fn(Ptr) -> c_int;
    virStreamSend: fn(Ptr, *const c_char, usize) -> c_int;
    virStreamRecv: fn(Ptr, *mut c_char, usize) -> c_int;
    virStreamFinish: fn(Ptr) -> c_int;
    virStreamAbort: fn(Ptr) -> c_int;

    virEventRegisterDefaultImpl: fn() -> c_int;
    virEventRunDefaultImpl: fn() -> c_int;

    virGetLastErrorCode: fn() -> c_int;
    virGetLastErrorMessage: fn() -> *const c_char;
    virSetErrorFunc: fn(*mut c_void, ErrorFunc) -> ();
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Api(libvirt.so.0)")
    }
}

/// The table, loading the library on the first call; why it cannot be loaded otherwise.
pub fn api() -> Result<&'static Api, Error> {
    static API: OnceLock<Result<Api, Error>> = OnceLock::new();
    let loaded = API.get_or_init(|| {
        // SAFETY: loading libvirt runs its initialisers, which only set up its own state
        // (libvirt is meant to be loaded into any process).
        let library = unsafe { Library::new(LIBRARY) }.map_err(|e| Error::not_installed(&e.to_string()))?;
        Api::load(library).map_err(Error::too_old)
    });
    loaded.as_ref().map_err(Clone::clone)
}

unsafe extern "C" {
    /// libc's, which libvirt allocates the strings it hands over with.
    fn free(ptr: *mut c_void);
}

/// Copies a string libvirt allocated for the caller and frees it; `None` for NULL (a failed
/// call).
pub fn owned_string(ptr: *mut c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a non-NULL string libvirt returned to the caller is NUL-terminated and the
    // caller's to free, with free(3), once.
    unsafe {
        let text = CStr::from_ptr(ptr).to_string_lossy().into_owned();
        free(ptr.cast());
        Some(text)
    }
}

/// Copies a string libvirt keeps (a name or key that lives as long as its object).
pub fn borrowed_string(ptr: *const c_char) -> Option<String> {
    // SAFETY: non-NULL, it is NUL-terminated and valid while the object it belongs to,
    // which the caller holds.
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
}

/// Frees an array libvirt allocated for a list call (its items are the caller's already).
pub fn free_array(ptr: *mut Ptr) {
    if !ptr.is_null() {
        // SAFETY: the array a `virConnectListAll*` call returned, allocated with malloc.
        unsafe { free(ptr.cast()) }
    }
}

/// A C string of `text`, or an error naming what holds a NUL byte.
pub fn c_string(text: &str) -> Result<CString, Error> {
    CString::new(text).map_err(|_| Error::invalid_argument("a string passed to libvirt holds a NUL byte"))
}

/// A C string of an optional `text`: NULL when `None`.
pub fn c_string_opt(text: Option<&str>) -> Result<Option<CString>, Error> {
    text.map(c_string).transpose()
}

/// The pointer of an optional C string.
pub fn ptr_of(text: &Option<CString>) -> *const c_char {
    text.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}
