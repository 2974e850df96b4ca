//! Service-to-service authentication. Each service presents its own credential as a bearer
//! token on every gRPC call; the callee accepts only the callers it expects, compared in
//! constant time. The private network is not treated as trust.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::secret::Secret;

/// Which service is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceName {
    /// The gateway.
    Gateway,
    /// A bridge replica.
    Bridge,
    /// An agent.
    Agent,
    /// An executor.
    Executor,
}

impl ServiceName {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Bridge => "bridge",
            Self::Agent => "agent",
            Self::Executor => "executor",
        }
    }
}

/// Server side: admits calls carrying one of the expected credentials and records the
/// caller in the request extensions as [`AuthenticatedCaller`].
#[derive(Clone)]
pub struct RequireCaller {
    accepted: Arc<[(ServiceName, Secret)]>,
}

/// Set on every admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatedCaller(pub ServiceName);

impl RequireCaller {
    /// Accepts exactly these callers.
    pub fn new(accepted: Vec<(ServiceName, Secret)>) -> Self {
        Self {
            accepted: accepted.into(),
        }
    }

    fn identify(&self, presented: &[u8]) -> Option<ServiceName> {
        // Check every entry so the time taken does not reveal which one matched.
        let mut found = None;
        for (name, secret) in self.accepted.iter() {
            if secret.matches(presented) && found.is_none() {
                found = Some(*name);
            }
        }
        found
    }
}

impl Interceptor for RequireCaller {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        let Some(presented) = presented else {
            return Err(Status::unauthenticated(
                "missing service credential (authorization: Bearer ...)",
            ));
        };
        match self.identify(presented) {
            Some(caller) => {
                request.extensions_mut().insert(AuthenticatedCaller(caller));
                Ok(request)
            }
            None => Err(Status::unauthenticated("service credential not accepted")),
        }
    }
}

/// Client side: attaches this service's credential to every call.
#[derive(Clone)]
pub struct PresentCredential {
    header: MetadataValue<tonic::metadata::Ascii>,
}

/// The credential contains bytes that cannot go in a header.
#[derive(Debug, thiserror::Error)]
#[error(
    "the {0} service credential contains characters not allowed in a header; use printable ASCII"
)]
pub struct BadCredential(pub &'static str);

impl PresentCredential {
    /// Presents `secret` as `service`.
    pub fn new(service: ServiceName, secret: &Secret) -> Result<Self, BadCredential> {
        let mut header: MetadataValue<tonic::metadata::Ascii> =
            format!("Bearer {}", secret.expose())
                .parse()
                .map_err(|_| BadCredential(service.as_str()))?;
        header.set_sensitive(true);
        Ok(Self { header })
    }
}

impl Interceptor for PresentCredential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(header: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(h) = header {
            r.metadata_mut().insert("authorization", h.parse().unwrap());
        }
        r
    }

    #[test]
    fn admits_only_known_credentials() {
        let mut check = RequireCaller::new(vec![
            (ServiceName::Bridge, Secret::new("bridge-secret")),
            (ServiceName::Agent, Secret::new("agent-secret")),
        ]);
        let ok = check.call(req(Some("Bearer agent-secret"))).unwrap();
        assert_eq!(
            ok.extensions().get::<AuthenticatedCaller>(),
            Some(&AuthenticatedCaller(ServiceName::Agent))
        );
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("agent-secret"),
            Some("Bearer "),
            Some("Bearer agent-secretx"),
        ] {
            let err = check.call(req(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn client_attaches_its_credential() {
        let mut present =
            PresentCredential::new(ServiceName::Agent, &Secret::new("agent-secret")).unwrap();
        let r = present.call(Request::new(())).unwrap();
        let mut check = RequireCaller::new(vec![(ServiceName::Agent, Secret::new("agent-secret"))]);
        assert!(check.call(r).is_ok());
        assert!(PresentCredential::new(ServiceName::Agent, &Secret::new("bad\nvalue")).is_err());
    }
}
