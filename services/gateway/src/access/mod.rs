//! Pure access decisions for the operator API: who the client is, whether it is local,
//! whether it may try again, whether its browser origin is allowed, which methods its
//! scopes permit, and the device pairing store. No I/O: time and randomness are passed in,
//! so every piece is property-tested and the pairing store is model-checked
//! (`tests/access_*.rs`). Rules come from SECURITY.md, "Gateway exposure" and "Device
//! identity and pairing".
//!
//! | module | what |
//! |---|---|
//! | [`cidr`] | (from the runtime) `gateway.trustedProxies` networks; `::ffff:a.b.c.d` → `a.b.c.d` |
//! | [`client_addr`] | client address and "local" from peer, forwarding headers, trusted proxies |
//! | [`rate_limit`] | failed-auth lockouts per (address, credential class) |
//! | [`write_limit`] | token buckets for side-effecting methods |
//! | [`origin`] | browser `Origin` check (same-origin, `allowedOrigins`, DNS rebinding) |
//! | [`scope_set`] | `Role`, `Scope`, `ScopeSet` |
//! | [`scopes`] | the method and event table: which scope each needs |
//! | [`device_token`] | device ids, device tokens (hashed, constant-time compare) |
//! | [`pairing`] | the pairing store: request, approve, reject, revoke, rotate, authenticate |
//! | [`pairing_types`] | its states, outcomes and errors |

pub use pincer_runtime::cidr;
pub mod client_addr;
pub mod device_token;
pub mod origin;
pub mod pairing;
pub mod pairing_types;
pub mod rate_limit;
pub mod scope_set;
pub mod scopes;
pub mod write_limit;

pub use cidr::{IpCidr, ProxyNet, normalize_ip, parse_trusted_proxies};
pub use client_addr::{ClientAddr, ClientAddrError, has_forwarding_header, resolve_client_addr};
pub use device_token::{DeviceId, IssuedToken, TokenSecret};
pub use origin::{OriginError, OriginVerdict, check_origin};
pub use pairing::PairingStore;
pub use rate_limit::{AuthCheck, AuthFailureLimiter, AuthLimitConfig, CredentialClass};
pub use scope_set::{Role, Scope, ScopeSet};
pub use scopes::{MethodDenied, MethodPolicy, ScopeName};
pub use write_limit::{BucketConfig, KeyedBuckets, Throttled, TokenBucket};
