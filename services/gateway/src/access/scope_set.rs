//! Roles and operator scopes: the shared vocabulary of `pincer-identity`, so the scopes a
//! device signs at connect and the scopes pairing grants are one type. Wire names
//! (`operator`, `node`, `read`, `write`, `admin`, `approvals`, `pairing`) are the
//! contract. Scopes do not imply one another: `admin` does not include `read`.

pub use pincer_identity::{Role, Scope, ScopeSet};
