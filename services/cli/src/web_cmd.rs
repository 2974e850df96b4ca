//! `pincer web fetch URL`: the SSRF-guarded fetch (`pincer-egress`) from the command line.
//! Prints the page as text on stdout; a refusal names the rule on stderr and exits non-zero.

use std::process::ExitCode;
use std::sync::Arc;

use pincer_egress::{Fetcher, Limits, LoopbackOnlyDialer};

use crate::CliError;
use crate::cli::{WebCommand, WebFetchArgs};

/// Runs a `pincer web` command.
pub async fn run(command: &WebCommand) -> Result<ExitCode, CliError> {
    match command {
        WebCommand::Fetch(args) => fetch(args).await,
    }
}

async fn fetch(args: &WebFetchArgs) -> Result<ExitCode, CliError> {
    let mut builder = Fetcher::builder().limits(Limits {
        max_body_bytes: args.max_bytes,
        ..Limits::default()
    });
    for net in &args.allow_network {
        builder = builder.allow_network(*net);
    }
    if args.loopback_only {
        builder = builder.dialer(Arc::new(LoopbackOnlyDialer));
    }
    let page = builder.build()?.fetch(&args.url).await?;
    println!("{}", page.text);
    if page.status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("pincer: the server answered HTTP {}", page.status);
        Ok(ExitCode::FAILURE)
    }
}
