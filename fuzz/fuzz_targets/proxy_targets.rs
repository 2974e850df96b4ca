//! Arbitrary request lines for the guarded proxy: reading the method and target never
//! panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(space) = data.iter().position(|b| *b == b' ') else {
        return;
    };
    let (method, target) = (&data[..space], &data[space + 1..]);
    let (Ok(method), Ok(uri)) = (
        http::Method::from_bytes(method),
        http::Uri::try_from(target),
    ) else {
        return;
    };
    let _ = pincer_egress::proxy::read_request_target(&method, &uri);
});
