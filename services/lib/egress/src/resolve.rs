//! Name resolution: a [`Resolver`] seam, a hickory-dns implementation, and the rule that
//! every answer must pass the IP policy ([`check_answers`]).
//!
//! A name is resolved once per hop; the fetcher connects only to the addresses checked
//! here (pinned), so a DNS answer that changes between "check" and "connect" (rebinding)
//! has nothing to change. One refused answer refuses the whole name: the fetcher never
//! picks the good ones out of a mixed answer, because the attacker chose the mix.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::future::BoxFuture;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use tokio::sync::OnceCell;

use crate::ip_policy::{Blocked, IpPolicy};

/// Why a name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The system DNS configuration (`/etc/resolv.conf`) could not be read.
    #[error("cannot read the system DNS configuration: {0}")]
    SystemConfig(#[source] hickory_resolver::ResolveError),
    /// The lookup failed (no such name, no answer, timeout, server failure).
    #[error("{0}")]
    Lookup(#[source] hickory_resolver::ResolveError),
    /// The lookup succeeded with no A or AAAA records.
    #[error("no A or AAAA records")]
    NoAddresses,
}

/// Looks up every A and AAAA record of a name. Implementations return all answers;
/// filtering is the caller's job ([`check_answers`]).
pub trait Resolver: Send + Sync + fmt::Debug {
    /// All addresses of `name` (a DNS name without a trailing dot, never an IP literal).
    fn lookup_ip<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>>;
}

/// `Ok` if every answer passes `policy`, otherwise the first refused answer. (An empty
/// answer is the resolver's error, [`ResolveError::NoAddresses`].)
pub fn check_answers(answers: &[IpAddr], policy: &IpPolicy) -> Result<(), Blocked> {
    answers.iter().try_for_each(|ip| policy.check(*ip))
}

/// The hickory-dns resolver: the system configuration by default, or explicit name
/// servers. Queries A and AAAA in parallel and looks names up fully qualified, so the
/// search list (`search corp.internal` in `/etc/resolv.conf`) never turns `metadata`
/// into `metadata.google.internal`.
#[derive(Clone)]
pub struct HickoryResolver {
    source: Source,
    inner: Arc<OnceCell<TokioResolver>>,
}

#[derive(Clone, Debug)]
enum Source {
    System,
    NameServers(Vec<SocketAddr>),
}

impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolver")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl HickoryResolver {
    /// Uses the system configuration (`/etc/resolv.conf`, `/etc/hosts`), read on first
    /// use, so a fetch of an IP literal never needs it.
    pub fn system() -> Self {
        Self {
            source: Source::System,
            inner: Arc::new(OnceCell::new()),
        }
    }

    /// Asks exactly these name servers (UDP, then TCP on truncation); ignores
    /// `/etc/hosts`. Tests point this at a fake DNS server on `127.0.0.1:PORT`.
    pub fn with_name_servers(servers: &[SocketAddr]) -> Self {
        Self {
            source: Source::NameServers(servers.to_vec()),
            inner: Arc::new(OnceCell::new()),
        }
    }

    async fn resolver(&self) -> Result<&TokioResolver, ResolveError> {
        self.inner
            .get_or_try_init(|| async {
                let provider = TokioConnectionProvider::default();
                let mut builder = match &self.source {
                    Source::System => {
                        TokioResolver::builder(provider).map_err(ResolveError::SystemConfig)?
                    }
                    Source::NameServers(servers) => {
                        let mut config = ResolverConfig::new();
                        for addr in servers {
                            config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
                            config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
                        }
                        let mut b = TokioResolver::builder_with_config(config, provider);
                        b.options_mut().use_hosts_file = ResolveHosts::Never;
                        b
                    }
                };
                let opts: &mut ResolverOpts = builder.options_mut();
                opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                Ok(builder.build())
            })
            .await
    }
}

impl Resolver for HickoryResolver {
    fn lookup_ip<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        Box::pin(async move {
            let resolver = self.resolver().await?;
            let fqdn = format!("{}.", name.trim_end_matches('.'));
            let lookup = resolver
                .lookup_ip(fqdn.as_str())
                .await
                .map_err(ResolveError::Lookup)?;
            let answers: Vec<IpAddr> = lookup.iter().collect();
            if answers.is_empty() {
                return Err(ResolveError::NoAddresses);
            }
            Ok(answers)
        })
    }
}
