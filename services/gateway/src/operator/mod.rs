//! The operator-facing API on `gateway.listen`: HTTP health routes and the WebSocket
//! protocol (JSON `req`/`res`/`event` frames).
//!
//! | module | what |
//! |---|---|
//! | [`http`] | the axum router: `/healthz`, `/readyz`, `/ws` |
//! | [`auth`] | the operator credential: token, password (Argon2id) or none |
//! | [`frames`] | frame types and error codes |
//! | [`submit`] | queueing an operator message (shared by WS and HTTP) |
//! | [`openai_compat`] | `POST /v1/chat/completions`, `GET /v1/models` (off by default) |
//! | [`ws`] | one connection: challenge, handshake, request loop, events, kicks |
//! | [`handshake`] | `connect`: signature, credential, pairing, granted scopes |
//! | [`methods`] | method table check, write budgets, the methods |
//! | [`devices`] | the device registry (pairing store written through to SQLite) |
//! | [`senders`] | `pairing.*`: strangers' pairing requests and paired chat senders |
//! | [`events`] | gateway events for operator connections; kicks |

pub mod auth;
pub mod devices;
pub mod events;
pub mod frames;
pub mod handshake;
pub mod http;
pub mod methods;
pub mod openai_compat;
pub mod senders;
pub mod submit;
pub mod ws;
