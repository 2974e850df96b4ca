//! `web_fetch`: a wire [`WebFetchRequest`] becomes a [`WebFetchPlan`], then a
//! [`ValidatedWebFetch`] (the grant lists `web_fetch` and gives network access
//! `EGRESS`; the URL is present and not too long), which [`WebFetchTool`] fetches
//! through the SSRF-guarded [`Fetcher`] of `pincer-egress` (docs/egress.md). The
//! guard's refusals name the rule and reach the caller as `PermissionDenied`.

use pincer_egress::{Dialer, Fetcher, Limits};
use pincer_proto::v1::{TurnGrant, WebFetchRequest, WebFetchResponse};
use pincer_runtime::config::validate::WebFetchToolConfig;

use crate::ExecutorError;
use crate::grant::{Clock, GrantError, GrantKeys, Tool, WorkspaceNeed, check_grant};

/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Most bytes of page text returned (cut on a character boundary, `truncated` set).
pub const MAX_WEB_TEXT_BYTES: usize = 256 * 1024;

/// Why a `web_fetch` request is malformed (the grant aside; the URL's rules are the
/// guard's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebPlanError {
    /// No URL.
    #[error("the url is empty; give an http:// or https:// URL")]
    EmptyUrl,
    /// The URL is too long.
    #[error("the url is {0} bytes; the limit is {MAX_URL_BYTES}")]
    UrlTooLong(usize),
}

/// `web_fetch`, unchecked.
#[derive(Debug, Clone)]
pub struct WebFetchPlan {
    grant: Option<TurnGrant>,
    session_key: String,
    url: String,
}

impl From<WebFetchRequest> for WebFetchPlan {
    fn from(r: WebFetchRequest) -> Self {
        Self {
            grant: r.grant,
            session_key: r.session_key,
            url: r.url,
        }
    }
}

/// A `web_fetch` call that passed every check the executor makes before the guard.
#[derive(Debug, Clone)]
pub struct ValidatedWebFetch {
    turn_id: String,
    url: String,
}

impl ValidatedWebFetch {
    /// The turn, for logs.
    pub fn turn_id(&self) -> &str {
        &self.turn_id
    }
    /// The URL as the caller sent it (the guard parses it).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl WebFetchPlan {
    /// The grant (tool listed, network `EGRESS`), then the URL.
    pub fn validate(
        self,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedWebFetch, ExecutorError> {
        let grant = check_web_grant(self.grant.as_ref(), &self.session_key, keys, clock)?;
        if !grant.egress {
            return Err(ExecutorError::NoNetworkGrant);
        }
        let url = self.url.trim();
        if url.is_empty() {
            return Err(WebPlanError::EmptyUrl.into());
        }
        if url.len() > MAX_URL_BYTES {
            return Err(WebPlanError::UrlTooLong(url.len()).into());
        }
        Ok(ValidatedWebFetch {
            turn_id: grant.turn_id,
            url: url.to_owned(),
        })
    }
}

/// What a web grant check keeps.
struct WebGrant {
    turn_id: String,
    egress: bool,
}

/// Checks the grant for `web_fetch`, which never touches the workspace.
fn check_web_grant(
    grant: Option<&TurnGrant>,
    session_key: &str,
    keys: &dyn GrantKeys,
    clock: &dyn Clock,
) -> Result<WebGrant, GrantError> {
    let g = check_grant(
        grant,
        session_key,
        Tool::WebFetch,
        WorkspaceNeed::Nothing,
        keys,
        clock,
    )?;
    Ok(WebGrant {
        turn_id: g.turn_id,
        egress: g.egress,
    })
}

/// The `web_fetch` tool: the guarded fetcher built from `tools.webFetch`.
#[derive(Debug)]
pub struct WebFetchTool {
    fetcher: Fetcher,
}

impl WebFetchTool {
    /// A fetcher with `config`'s allowlist and limits (at most 3 redirects), dialling
    /// with `dialer` when given (tests: `LoopbackOnlyDialer`), else plain TCP.
    pub fn from_config(
        config: &WebFetchToolConfig,
        dialer: Option<std::sync::Arc<dyn Dialer>>,
    ) -> Result<Self, ExecutorError> {
        let mut builder = Fetcher::builder().limits(Limits {
            max_body_bytes: usize::try_from(config.max_bytes).unwrap_or(usize::MAX),
            total_time: config.timeout,
            ..Limits::default()
        });
        for net in &config.allow_networks {
            builder = builder.allow_network(*net);
        }
        if let Some(dialer) = dialer {
            builder = builder.dialer(dialer);
        }
        Ok(Self {
            fetcher: builder.build().map_err(ExecutorError::WebSetup)?,
        })
    }

    /// Fetches the page.
    pub async fn fetch(&self, plan: &ValidatedWebFetch) -> Result<WebFetchResponse, ExecutorError> {
        let page = self.fetcher.fetch(plan.url()).await?;
        let (text, truncated) = cut(page.text, MAX_WEB_TEXT_BYTES);
        Ok(WebFetchResponse {
            final_url: page.url.to_string(),
            status: u32::from(page.status.as_u16()),
            content_type: page.content_type,
            text,
            truncated,
            redirects: u32::from(page.redirects),
        })
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{FixedClock, sign_claims, testing};
    use pincer_proto::v1::{GrantClaims, NetworkAccess, WorkspaceAccess};

    fn claims(access: WorkspaceAccess, network: NetworkAccess) -> GrantClaims {
        GrantClaims {
            turn_id: "t".into(),
            session_key: "s".into(),
            agent_id: "main".into(),
            allowed_tools: vec!["web_fetch".into()],
            expires_at_ms: 1_000,
            workspace_access: access.into(),
            network: network.into(),
            exec_policy: None,
            sandbox: None,
        }
    }

    fn plan(grant: TurnGrant, session: &str) -> WebFetchPlan {
        WebFetchPlan::from(WebFetchRequest {
            grant: Some(grant),
            session_key: session.into(),
            url: " http://example.com/ ".into(),
        })
    }

    #[test]
    fn needs_egress_but_no_workspace() {
        let keys = testing::keys();
        let clock = FixedClock(0);
        for access in [WorkspaceAccess::None, WorkspaceAccess::ReadWrite] {
            let g = sign_claims(
                &testing::gateway_key(),
                &claims(access, NetworkAccess::Egress),
            );
            let ok = plan(g, "s").validate(&keys, &clock).unwrap();
            assert_eq!(ok.url(), "http://example.com/");
            assert_eq!(ok.turn_id(), "t");
        }
        let g = sign_claims(
            &testing::gateway_key(),
            &claims(WorkspaceAccess::ReadWrite, NetworkAccess::None),
        );
        assert!(matches!(
            plan(g, "s").validate(&keys, &clock),
            Err(ExecutorError::NoNetworkGrant)
        ));
    }

    #[test]
    fn the_workspace_free_path_still_checks_everything_else() {
        let keys = testing::keys();
        let forger = pincer_identity::DeviceKey::from_seed([7; 32]);
        let base = claims(WorkspaceAccess::None, NetworkAccess::Egress);
        // Forged under the gateway's key id.
        let mut forged = sign_claims(&forger, &base);
        forged.key_id = testing::gateway_key().device_id().to_string();
        assert!(matches!(
            plan(forged, "s").validate(&keys, &FixedClock(0)),
            Err(ExecutorError::Grant(GrantError::BadSignature))
        ));
        let g = sign_claims(&testing::gateway_key(), &base);
        assert!(matches!(
            plan(g.clone(), "other").validate(&keys, &FixedClock(0)),
            Err(ExecutorError::Grant(GrantError::SessionMismatch { .. }))
        ));
        assert!(matches!(
            plan(g, "s").validate(&keys, &FixedClock(1_000)),
            Err(ExecutorError::Grant(GrantError::Expired { .. }))
        ));
        let mut other_tool = base;
        other_tool.allowed_tools = vec!["read_file".into()];
        let g = sign_claims(&testing::gateway_key(), &other_tool);
        assert!(matches!(
            plan(g, "s").validate(&keys, &FixedClock(0)),
            Err(ExecutorError::Grant(GrantError::ToolNotAllowed { .. }))
        ));
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(cut("héllo".into(), 2), ("h".into(), true));
        assert_eq!(cut("hi".into(), 2), ("hi".into(), false));
    }
}
