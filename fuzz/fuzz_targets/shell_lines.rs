//! Arbitrary text as a shell line for exec approvals: the parser never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pincer_executor::approval::shell::parse(text);
    }
});
