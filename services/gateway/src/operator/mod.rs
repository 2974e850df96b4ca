//! The operator-facing API on `gateway.listen`: HTTP health routes and the WebSocket
//! protocol (JSON `req`/`res`/`event` frames).
//!
//! | module | what |
//! |---|---|
//! | [`http`] | the axum router: `/healthz`, `/readyz`, `/ws` |
//! | [`frames`] | frame types and error codes |
//! | [`ws`] | one connection: handshake, auth, methods, events |

pub mod frames;
pub mod http;
pub mod ws;
