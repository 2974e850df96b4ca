//! [`EmailAdapter`]: one mailbox as a [`ChannelAdapter`].
//!
//! Inbound comes from the inbox task (see [`super::inbox`]), started on the first
//! [`ChannelAdapter::next_inbound`] and aborted when the adapter is dropped; items reach
//! `next_inbound` through a channel, so a cancelled call loses nothing. Outbound is one
//! SMTP submission per [`ChannelAdapter::send`] (see [`super::smtp`]); the platform id of a
//! sent mail is its `Message-ID` (without angle brackets).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use pincer_proto::v1::ChannelAccount;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::ClientConfig;

use super::CHANNEL;
use super::imap;
use super::inbox::{Inbox, ThreadCache, copy_error};
use super::normalize::{MessageLocation, ThreadInfo, thread_info};
use super::settings::EmailSettings;
use super::smtp::{self, MAX_TEXT, Outgoing};
use crate::adapter::{
    AdapterError, ChannelAdapter, ChatTarget, InboundItem, OutboundText, PlatformError,
    SendFailure, SentRefs,
};

/// How long before the lease's end `next_inbound` gives up waiting and no SMTP submission
/// starts any more.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// One mailbox.
#[derive(Debug)]
pub struct EmailAdapter {
    settings: Arc<EmailSettings>,
    account: ChannelAccount,
    tls: Arc<ClientConfig>,
    from: Mailbox,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    threads: Arc<ThreadCache>,
    items: tokio::sync::Mutex<mpsc::UnboundedReceiver<InboundItem>>,
    status: watch::Receiver<Option<PlatformError>>,
    task: Mutex<TaskSlot>,
}

/// The inbox task: not started yet (`inbox`) or running (`handle`).
#[derive(Debug)]
struct TaskSlot {
    inbox: Option<Inbox>,
    handle: Option<JoinHandle<()>>,
}

impl EmailAdapter {
    /// An adapter for one mailbox. Checks the settings (a plaintext connection to a host
    /// that is not loopback is refused here) and does no I/O.
    pub fn new(settings: EmailSettings) -> Result<Self, AdapterError> {
        settings.validate()?;
        let tls = imap::tls_config(settings.extra_ca_pem.as_deref())?;
        let address = settings.address.parse().map_err(|e| {
            PlatformError::operator(CHANNEL, format!("bot address {:?}: {e}", settings.address))
        })?;
        let smtp = smtp::transport(
            &settings.smtp,
            settings.extra_ca_pem.as_deref(),
            settings.io_timeout,
        )?;
        let account = ChannelAccount {
            channel: CHANNEL.to_owned(),
            account_id: settings.account_id.clone(),
        };
        let settings = Arc::new(settings);
        let threads = Arc::new(ThreadCache::default());
        let (items_tx, items_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(None);
        let inbox = Inbox {
            settings: Arc::clone(&settings),
            tls: Arc::clone(&tls),
            account: account.clone(),
            threads: Arc::clone(&threads),
            items: items_tx,
            status: status_tx,
        };
        Ok(Self {
            settings,
            account,
            tls,
            from: Mailbox::new(None, address),
            smtp,
            threads,
            items: tokio::sync::Mutex::new(items_rx),
            status,
            task: Mutex::new(TaskSlot {
                inbox: Some(inbox),
                handle: None,
            }),
        })
    }

    fn ensure_started(&self) {
        let Ok(mut slot) = self.task.lock() else {
            return;
        };
        if let Some(inbox) = slot.inbox.take() {
            slot.handle = Some(tokio::spawn(inbox.run()));
        }
    }

    async fn next_inbound_inner(&self, lease_until: Instant) -> Result<InboundItem, AdapterError> {
        let lease_ending = || AdapterError::LeaseEnding {
            margin_ms: LEASE_MARGIN.as_millis() as u64,
        };
        let Some(wait_until) = lease_until.checked_sub(LEASE_MARGIN) else {
            return Err(lease_ending());
        };
        if Instant::now() >= wait_until {
            return Err(lease_ending());
        }
        self.ensure_started();
        let stopped = || -> AdapterError {
            PlatformError::transient(CHANNEL, "the e-mail inbox task stopped").into()
        };
        let mut items = self.items.lock().await;
        let mut status = self.status.clone();
        loop {
            // Mail already handed over goes first, even if the connection failed since.
            if let Ok(item) = items.try_recv() {
                return Ok(item);
            }
            if let Some(e) = status.borrow_and_update().as_ref() {
                return Err(copy_error(e).into());
            }
            tokio::select! {
                item = items.recv() => return item.ok_or_else(stopped),
                changed = status.changed() => {
                    if changed.is_err() {
                        return Err(stopped());
                    }
                }
                () = tokio::time::sleep_until(wait_until.into()) => return Err(lease_ending()),
            }
        }
    }

    /// The threading headers of the message `platform_message_id`: from the cache, else
    /// fetched from IMAP by UID. `None` (send unthreaded) when it cannot be found.
    async fn original(&self, platform_message_id: &str) -> Option<ThreadInfo> {
        if let Some(info) = self.threads.get(platform_message_id) {
            return Some(info);
        }
        let at = MessageLocation::parse(platform_message_id)?;
        match self.fetch_headers(at).await {
            Ok(Some(info)) => {
                self.threads
                    .insert(platform_message_id.to_owned(), info.clone());
                Some(info)
            }
            Ok(None) => {
                tracing::info!(
                    platform_message_id,
                    "reply target not in the mailbox; sending unthreaded"
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    platform_message_id,
                    error = %e,
                    "cannot look up the reply target; sending unthreaded"
                );
                None
            }
        }
    }

    async fn fetch_headers(
        &self,
        at: MessageLocation,
    ) -> Result<Option<ThreadInfo>, PlatformError> {
        let io = self.settings.io_timeout;
        let mut session = imap::connect(&self.settings.imap, &self.tls, io).await?;
        let validity = imap::timed(
            io,
            "SELECT",
            imap::select(&mut session, &self.settings.imap.mailbox),
        )
        .await?;
        let found = if validity == at.uid_validity {
            imap::timed(
                io,
                "UID FETCH",
                imap::fetch(&mut session, at.uid, "(UID BODY.PEEK[HEADER])"),
            )
            .await?
            .map(|raw| thread_info(&raw))
        } else {
            None
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
        Ok(found)
    }

    async fn send_inner(&self, out: OutboundText) -> Result<SentRefs, SendFailure> {
        let fail = |error: AdapterError| SendFailure {
            sent: Vec::new(),
            error,
        };
        if out.skip_chunks > 0 {
            // The one e-mail of this text went out in an earlier attempt.
            return Ok(SentRefs::default());
        }
        if out.text.trim().is_empty() {
            return Err(fail(bad_target("text", "", "an e-mail needs a text")));
        }
        if out.text.len() > MAX_TEXT {
            return Err(fail(
                PlatformError::permanent(
                    CHANNEL,
                    format!(
                        "the text has {} bytes; one e-mail carries at most {MAX_TEXT}",
                        out.text.len()
                    ),
                )
                .into(),
            ));
        }
        if out.chat_id.parse::<lettre::Address>().is_err() {
            return Err(fail(bad_target(
                "chat_id",
                &out.chat_id,
                "use the recipient's e-mail address",
            )));
        }
        let original = match out.reply_to.as_deref() {
            Some(id) if !id.is_empty() => self.original(id).await,
            _ => None,
        };
        let domain = self
            .settings
            .address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d);
        let message_id = format!("{}@{domain}", uuid::Uuid::new_v4().simple());
        let message = smtp::build(&Outgoing {
            from: &self.from,
            to: &out.chat_id,
            markdown: &out.text,
            reply_to: original.as_ref(),
            message_id: &message_id,
        })
        .map_err(|e| fail(e.into()))?;
        if out
            .lease_until
            .is_some_and(|until| Instant::now() + LEASE_MARGIN >= until)
        {
            return Err(fail(
                PlatformError::transient(CHANNEL, "the lease ends before the e-mail could be sent")
                    .into(),
            ));
        }
        smtp::submit(&self.smtp, message)
            .await
            .map_err(|e| fail(e.into()))?;
        Ok(SentRefs {
            platform_message_ids: vec![message_id],
        })
    }
}

impl Drop for EmailAdapter {
    fn drop(&mut self) {
        if let Ok(slot) = self.task.get_mut()
            && let Some(handle) = &slot.handle
        {
            handle.abort();
        }
    }
}

impl ChannelAdapter for EmailAdapter {
    fn account(&self) -> ChannelAccount {
        self.account.clone()
    }

    fn next_inbound(
        &self,
        lease_until: Instant,
    ) -> BoxFuture<'_, Result<InboundItem, AdapterError>> {
        self.next_inbound_inner(lease_until).boxed()
    }

    fn send(&self, text: OutboundText) -> BoxFuture<'_, Result<SentRefs, SendFailure>> {
        self.send_inner(text).boxed()
    }

    fn typing(&self, _target: ChatTarget) -> BoxFuture<'_, Result<(), AdapterError>> {
        // E-mail has no typing indicator.
        async { Ok(()) }.boxed()
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), AdapterError>> {
        // `\Seen` is stored as each ack arrives; nothing is held back.
        async { Ok(()) }.boxed()
    }
}

fn bad_target(field: &'static str, value: &str, reason: &'static str) -> AdapterError {
    AdapterError::BadTarget {
        channel: CHANNEL,
        field,
        value: value.to_owned(),
        reason,
    }
}
