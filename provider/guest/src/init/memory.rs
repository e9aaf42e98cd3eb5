//! Giving the host back the memory the guest does not use.
//!
//! The balloon's free-page reporting tells QEMU which free pages it may discard, but Linux
//! 6.1 reports only blocks of `pageblock_order` (2 MiB), and only while a zone keeps 32 such
//! blocks free above its low watermark: measured when `strict` guests still touched all their
//! memory at boot, the quickstart's guest of 128 MiB stayed at 50 MiB resident on the host,
//! one of 48 MiB at all of it. Blocks of 8 pages lower both bars; the same guest settled at
//! 42 MiB (order 0 gave the same, with more reports). The kernel sets
//! the order when the balloon registers, over any command-line value, so init sets it, and
//! only once the instance serves: reporting small blocks while booting slowed the boot.

/// Free blocks of 2^order pages are reported.
pub const PAGE_REPORTING_ORDER: u32 = 3;
const PARAMETER: &str = "/sys/module/page_reporting/parameters/page_reporting_order";

/// Best effort: without the balloon (or its parameter) nothing is reported anyway.
pub fn report_small_free_blocks() -> Result<(), std::io::Error> {
    match std::fs::write(PARAMETER, PAGE_REPORTING_ORDER.to_string()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
