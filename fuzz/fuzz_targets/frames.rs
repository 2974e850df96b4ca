//! Arbitrary bytes as an operator WebSocket frame: parsing must never panic, whatever the
//! frame, method or parameters.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = pincer_gateway::operator::frames::parse_untrusted(data);
});
